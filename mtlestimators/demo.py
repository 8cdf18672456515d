"""The main job: fit the library's models on bundled real data and print scores.

Run with ``python -m mtlestimators.demo`` (``--quick`` for a shorter run).
It fits :class:`~mtlestimators.MSSMClassifier` (on the raw categorical and
numeric fields) and :class:`~mtlestimators.SharedBottomClassifier` (on
one-hot features) on the UCI Adult data as two tasks (income > 50K, never
married), next to one logistic regression per task; then
:class:`~mtlestimators.AutoTaskClassifier` and the general branch of
:class:`~mtlestimators.MultiTaskDNNClassifier` on Adult by occupation, with
two occupations held out as unseen tasks; then
:class:`~mtlestimators.GalleryEmbedder` on galleries of MNIST digits, with a
linear probe on its embeddings for a task it never trained on.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from . import MSSMClassifier, SharedBottomClassifier, per_task_scores
from .datasets import load_adult_multitask


def adult_preprocessor(categorical, numeric) -> ColumnTransformer:
    """One-hot categorical columns (missing as its own value), z-score numbers."""
    return ColumnTransformer(
        [
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            ),
            ("numeric", StandardScaler(), numeric),
        ]
    )


def _row(model: str, scores: dict, seconds: float) -> str:
    cells = [
        f"{scores[t]['roc_auc']:.4f} / {scores[t]['pr_auc']:.4f}"
        for t in ("income", "never_married")
    ]
    return f"{model:<36} {cells[0]:>17} {cells[1]:>17} {seconds:>8.1f}"


def run(max_epochs: int = 10, verbose: int = 1, random_state: int = 0) -> dict:
    """Fit and score every model; returns ``{model: per-task scores}``."""
    data = load_adult_multitask()
    X_train, X_test, Y_train, Y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=random_state
    )
    print(
        f"UCI Adult, two tasks (income>50K, never-married): {len(X_train)} train "
        f"rows, {len(X_test)} test rows, {data.data.shape[1]} raw features."
    )
    results, lines = {}, []
    training = dict(max_epochs=max_epochs, verbose=verbose, random_state=random_state)
    one_hot = adult_preprocessor(data.categorical_features, data.numeric_features)
    multi_task = {
        "MSSMClassifier (raw fields)": MSSMClassifier(**training),
        "SharedBottomClassifier (one-hot)": make_pipeline(
            one_hot, SharedBottomClassifier(**training)
        ),
    }
    for name, model in multi_task.items():
        start = time.perf_counter()
        model.fit(X_train, Y_train)
        seconds = time.perf_counter() - start
        results[name] = per_task_scores(Y_test, model.predict_proba(X_test))
        lines.append(_row(name, results[name], seconds))

    start = time.perf_counter()
    scores = {}
    for task in Y_train.columns:
        logreg = make_pipeline(clone(one_hot), LogisticRegression(max_iter=2000)).fit(
            X_train, Y_train[task]
        )
        proba = logreg.predict_proba(X_test)
        scores[task] = per_task_scores(Y_test[task].to_numpy(), proba)["task_0"]
    seconds = time.perf_counter() - start
    results["LogisticRegression per task"] = scores
    lines.append(_row("LogisticRegression (one per task)", scores, seconds))

    print()
    print("Held-out ROC AUC / PR AUC")
    print(f"{'model':<36} {'income':>17} {'never_married':>17} {'fit (s)':>8}")
    print("\n".join(lines))
    results.update(scenarios(max_epochs, verbose, random_state))
    results.update(galleries(max_epochs, verbose, random_state))
    return results


def scenarios(max_epochs: int, verbose: int, random_state: int) -> dict:
    """AutoTask vs the multi-task DNN baseline on Adult by occupation, with
    two occupations never seen in training."""
    from . import AutoTaskClassifier, MultiTaskDNNClassifier
    from .datasets import load_adult_scenarios

    data = load_adult_scenarios(random_state=random_state)
    print(
        f"\nUCI Adult by occupation (AutoTask's multi-scenario setting): "
        f"{len(data.X_train)} train rows over {len(data.seen_tasks)} "
        f"occupations; {len(data.X_test)} test rows, incl. the unseen "
        f"occupations {data.unseen_tasks}; label income>50K."
    )
    training = dict(
        task_column="occupation",
        max_epochs=max_epochs,
        verbose=verbose,
        random_state=random_state,
    )
    occupation = data.X_test["occupation"].to_numpy()
    y = data.y_test.to_numpy()
    seen = ~np.isin(occupation, data.unseen_tasks)
    groups = {"seen occupations": seen}
    groups.update((t, occupation == t) for t in data.unseen_tasks)
    results, lines = {}, []
    models = {
        "AutoTaskClassifier": AutoTaskClassifier(**training),
        "MultiTaskDNNClassifier (general)": MultiTaskDNNClassifier(
            branch="general", **training
        ),
    }
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(data.X_train, data.y_train)
        seconds = time.perf_counter() - start
        proba = model.predict_proba(data.X_test)[:, 1]
        results[name] = {
            group: roc_auc_score(y[rows], proba[rows]) for group, rows in groups.items()
        }
        cells = " ".join(f"{results[name][g]:>17.4f}" for g in groups)
        lines.append(f"{name:<36} {cells} {seconds:>8.1f}")
    print("\nHeld-out ROC AUC (rows of all seen occupations pooled; each unseen one)")
    print(f"{'model':<36} " + " ".join(f"{g:>17}" for g in groups) + "  fit (s)")
    print("\n".join(lines))
    return results


def galleries(max_epochs: int, verbose: int, random_state: int) -> dict:
    """GalleryEmbedder on galleries of MNIST digits; a linear probe on its
    embeddings predicts a task it was never trained on."""
    from sklearn.frozen import FrozenEstimator

    from . import GalleryEmbedder
    from .datasets import make_digit_galleries

    train = make_digit_galleries(
        400, subset="train", missing_rate=0.1, random_state=random_state
    )
    test = make_digit_galleries(200, subset="test", random_state=random_state + 1)
    print(
        f"\nGalleries of 5-20 MNIST digits (28x28): {len(train.galleries)} train, "
        f"{len(test.galleries)} test; tasks {list(train.target.columns)}; "
        "hold-out task mostly_even (never trained on)."
    )
    embedder = GalleryEmbedder(
        backbone="small_vgg",
        image_size=28,
        lr=1e-3,
        batch_size=16,
        max_epochs=max(3, max_epochs // 2),
        verbose=verbose,
        random_state=random_state,
    )
    start = time.perf_counter()
    embedder.fit(train.galleries, train.target)
    seconds = time.perf_counter() - start
    probe = make_pipeline(
        FrozenEstimator(embedder), StandardScaler(), LogisticRegression(max_iter=2000)
    ).fit(train.galleries, train.holdout)
    accuracy = probe.score(test.galleries, test.holdout)

    def mean_image(batch):
        return np.stack([g.reshape(len(g), -1).mean(axis=0) for g in batch])

    pixels = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    pixels.fit(mean_image(train.galleries), train.holdout)
    baseline = pixels.score(mean_image(test.galleries), test.holdout)
    majority = max(test.holdout.mean(), 1 - test.holdout.mean())
    print("\nHold-out task accuracy on test galleries")
    print(f"{'linear probe on GalleryEmbedder embeddings':<52} {accuracy:.4f}")
    print(f"{'linear probe on the mean image of each gallery':<52} {baseline:.4f}")
    print(f"{'majority class':<52} {majority:.4f}")
    print(f"(GalleryEmbedder fit: {seconds:.1f} s)")
    return {
        "GalleryEmbedder probe": {"mostly_even_accuracy": accuracy},
        "mean-image probe": {"mostly_even_accuracy": baseline},
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="mtlestimators demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="5 epochs instead of 10")
    parser.add_argument("--verbose", type=int, default=1, help="0 hides epoch tables")
    args = parser.parse_args(argv)
    np.set_printoptions(precision=4)
    run(max_epochs=5 if args.quick else 10, verbose=args.verbose)


if __name__ == "__main__":
    main()
