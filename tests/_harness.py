"""Data and settings the shared suite uses for each kind of estimator.

A new estimator joins the common tests by being exported from
``mtlestimators.__all__``; if it needs data other than a tabular multi-task
classification problem, add a case to ``make_data``.
"""

import numpy as np
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from mtlestimators import (
    AutoTaskClassifier,
    CrossStitchClassifier,
    GalleryEmbedder,
    MMoEClassifier,
    MSSMClassifier,
    MultiTaskDNNClassifier,
    PerTaskCalibratedClassifier,
    PLEClassifier,
    SharedBottomClassifier,
    SingleTaskMLPClassifier,
    SNRClassifier,
)

# GalleryEmbedder's defaults (VGG16 at 224x224) are far too slow for the suite:
# the library's small VGG-style backbone on 8x8 images stands in.
_GALLERY_FAST = {"backbone": "small_vgg", "image_size": 8, "lr": 1e-3}


def fast_instance(cls):
    """A quick-to-train instance: defaults, silent, seeded."""
    if cls is PerTaskCalibratedClassifier:
        return cls(AutoTaskClassifier(verbose=0, random_state=0, max_epochs=10), cv=2)
    if cls is GalleryEmbedder:
        return cls(verbose=0, random_state=0, max_epochs=10, **_GALLERY_FAST)
    return cls(verbose=0, random_state=0, max_epochs=10)


def check_instance(cls):
    """The instance scikit-learn's estimator checks run on."""
    if cls is PerTaskCalibratedClassifier:
        return cls(AutoTaskClassifier(verbose=0, random_state=0), cv=2)
    if cls is GalleryEmbedder:
        return cls(verbose=0, max_epochs=2, **_GALLERY_FAST)
    return cls(verbose=0)


# Checks that cannot apply to an estimator, with the reason.
_NO_N_FEATURES = (
    "a gallery holds any number of images of any size (each is resized to "
    "image_size), so there is no fixed number of input features to record or "
    "to check at transform"
)
_GALLERY_EXPECTED_FAILURES = {
    "check_n_features_in": _NO_N_FEATURES,
    "check_n_features_in_after_fitting": _NO_N_FEATURES,
    # The rest of this check passes; only its last step, which expects an
    # error for a narrower X at transform, does not apply.
    "check_transformer_general": _NO_N_FEATURES,
    "check_methods_subset_invariance": (
        "the packed encoder pass convolves batches of different sizes, and "
        "oneDNN's results differ in the last bits between batch shapes (about "
        "3e-7 absolute, over the check's atol=1e-7); test_gallery_properties.py "
        "checks batch invariance at 1e-5"
    ),
}


# check_sample_weight_equivalence_on_dense_data fits once on rows repeated
# by integer weights and once on the rows with those weights, and compares the
# predictions at rtol=1e-7. The weighted loss equals the loss on the repeated
# rows (tests/test_sample_weight.py checks it exactly, and the predictions of
# the two fits at 1e-4); where the check still fails, this is why.
_ROUNDING = (
    "a weight of 2 and a repeated row give the same loss and gradient only up "
    "to float32 rounding (the weighted sum and the sum over repeated rows add "
    "in another order), and after the epochs of Adam the predictions differ "
    "by about 1e-7, the check's rtol; tests/test_sample_weight.py checks the "
    "equivalence at 1e-4"
)
_SAMPLE_WEIGHT_EXPECTED_FAILURES = {
    CrossStitchClassifier: _ROUNDING,
    MMoEClassifier: _ROUNDING,
    PLEClassifier: _ROUNDING,
    MultiTaskDNNClassifier: _ROUNDING,
    # On field embeddings now (z-scored numeric fields, their float32 sums).
    SharedBottomClassifier: _ROUNDING,
    SingleTaskMLPClassifier: _ROUNDING,
    AutoTaskClassifier: (
        "in training the block representation attends across the block_size "
        "rows of a block, so repeated rows change what each row sees, and "
        "dropout (0.1 by default) draws one mask per row: repeated rows get "
        "masks of their own where a weighted row gets one (with dropout=0 and "
        "block_size=1 the property holds up to float32 rounding, checked in "
        "tests/test_sample_weight.py)"
    ),
    MSSMClassifier: (
        "the hard-concrete gates draw one noise sample per row of a batch: "
        "repeated rows get draws of their own where a weighted row gets one, "
        "so the two fits see different noise"
    ),
    SNRClassifier: (
        "the hard-concrete gates draw one noise sample per row of a batch: "
        "repeated rows get draws of their own where a weighted row gets one, "
        "so the two fits see different noise"
    ),
    GalleryEmbedder: (
        "with batch_size=16, the repeated rows (about 30) make two batches, "
        "so two optimizer steps per epoch, where the 15 weighted rows make "
        "one: the weights are equivalent in the loss, not in the batches "
        "(in one batch the property holds up to float32 rounding, checked in "
        "tests/test_sample_weight.py)"
    ),
}


def expected_failed_checks(estimator):
    """``expected_failed_checks`` for ``parametrize_with_checks``."""
    failures = {}
    if isinstance(estimator, GalleryEmbedder):
        failures.update(_GALLERY_EXPECTED_FAILURES)
    reason = _SAMPLE_WEIGHT_EXPECTED_FAILURES.get(type(estimator))
    if reason is not None:
        failures["check_sample_weight_equivalence_on_dense_data"] = reason
    return failures


def make_data(estimator, n_samples=240, seed=0):
    """(X_train, y_train, X_test, y_test) suited to ``estimator``."""
    rng = np.random.RandomState(seed)
    if hasattr(estimator, "task_column") or isinstance(
        estimator, PerTaskCalibratedClassifier
    ):
        # Scenario models: 1-D y; the last column of X is the task id. Task
        # "c" only reaches the test split, an unseen task.
        features = rng.normal(size=(n_samples, 5)).astype(np.float32)
        task = np.array(["a", "b"])[rng.randint(2, size=n_samples)]
        cut = n_samples * 3 // 4
        task[cut + (n_samples - cut) // 2 :] = "c"
        X = np.column_stack([features.astype(object), task])
        shift = np.where(task == "b", 0.5, 0.0)
        y = (features[:, 0] + 0.5 * features[:, 1] + shift > 0).astype(int)
        return X[:cut], y[:cut], X[cut:], y[cut:]
    X = rng.normal(size=(n_samples, 6)).astype(np.float32)
    if is_classifier(estimator):
        y = np.column_stack(
            [X[:, 0] + 0.5 * X[:, 1] > 0, X[:, 0] - X[:, 2] > 0]
        ).astype(float)
        y[rng.rand(n_samples) < 0.2, 1] = np.nan
    elif isinstance(estimator, GalleryEmbedder):
        # A 2-D array is read as one 1 x d image per gallery (so StandardScaler
        # fits in front of it); real galleries are tested in test_gallery*.py.
        digits = load_digits()
        order = rng.permutation(len(digits.target))[:n_samples]
        X = (digits.data[order] / 16.0).astype(np.float32)
        label = digits.target[order]
        y = np.column_stack([label >= 5, label % 3, label]).astype(float)
        y[rng.rand(n_samples) < 0.2, 1] = np.nan
        y[:, 2] += rng.normal(scale=0.1, size=n_samples)
    else:
        raise NotImplementedError(f"no harness data for {type(estimator).__name__}")
    cut = n_samples * 3 // 4
    return X[:cut], y[:cut], X[cut:], y[cut:]


def param_prefix(estimator) -> str:
    """Where the net's parameters are: ``estimator__`` for a meta-estimator."""
    return "estimator__" if isinstance(estimator, PerTaskCalibratedClassifier) else ""


def preprocessor(estimator):
    """A scaler to put in front of ``estimator`` in a Pipeline."""
    if hasattr(estimator, "task_column") or isinstance(
        estimator, PerTaskCalibratedClassifier
    ):
        # Scale the features; the task-id column passes through, last.
        return ColumnTransformer(
            [("scale", StandardScaler(), slice(0, 5))], remainder="passthrough"
        )
    return StandardScaler()


def outputs(estimator, X):
    """What the estimator produces, to compare two fitted copies."""
    if hasattr(estimator, "predict_proba"):
        return estimator.predict_proba(X)
    return estimator.transform(X)
