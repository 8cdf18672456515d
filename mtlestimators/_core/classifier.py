"""The classifier contract shared by the multi-task classifiers: y as one
task (1-D, binary or multiclass) or K binary tasks (2-D, NaN missing),
``predict_proba``, ``predict``, ``score`` and the scikit-learn tags."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .base import (
    NetEstimatorBase,
    _explain_input_error,
    _name_of,
    check_fitted_X,
    class_probabilities,
)
from .collapse import check_collapsed_tasks
from .early_stopping import fitted_epochs
from .params import InstanceOf, Options
from .targets import (
    drop_unlabelled_rows,
    encode_targets,
    has_column_names,
    missing_mask,
    resolve_tasks,
    task_names_of,
    y_in_task_order,
)
from .weights import (
    check_sample_weight,
    resolve_class_weight,
    row_weights,
    with_weights,
)


class MultiTaskClassifierBase(ClassifierMixin, NetEstimatorBase):
    """Base of the tabular multi-task classifiers.

    ``y`` is 1-D (one task: binary or multiclass, any label type) or 2-D
    (n, K) with one binary task per column and NaN/None as a missing label.
    ``predict_proba`` returns (n, n_classes) for one task and (n, K) positive
    class probabilities for K > 1 tasks.
    """

    def _validate_xy(self, X, y):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target "
                "y is None."
            )
        try:
            X, y = validate_data(
                self,
                X,
                y,
                validate_separately=(
                    self._X_check_params,
                    {
                        "dtype": None,
                        "ensure_2d": False,
                        "ensure_all_finite": "allow-nan",
                        "ensure_min_samples": 1,
                    },
                ),
            )
        except ValueError as exc:
            raise _explain_input_error(exc, self) from None
        if len(X) != len(y):
            raise ValueError(
                f"X has {len(X)} rows but y has {len(y)}; give one label row per "
                "sample."
            )
        return X, y

    _parameter_constraints = {
        "class_weight": [
            None,
            Options(["balanced"]),
            InstanceOf((dict, list, tuple), description="a dict or a list of them"),
        ],
    }

    # How validate_data checks X: a finite float matrix.
    _X_check_params = {"dtype": [np.float32, np.float64], "ensure_min_features": 1}

    def _fit_inputs(self, X, X_input=None, sample_weight=None):
        """Model input for validated training X: ``(inputs, input_spec,
        fitted_attributes)``; the attributes are stored once training succeeds.
        ``sample_weight`` (None or one weight per row of X) is for statistics
        learned from X (feature scaling), which count a row by its weight."""
        return X.astype(np.float32, copy=False), {"n_features": X.shape[1]}, {}

    def _fitted_extras(self, net, inputs) -> dict:
        """Model-specific fitted attributes computed from the trained net."""
        return {}

    def _predict_inputs(self, X):
        """Validate X at predict time and turn it into the model input."""
        X = check_fitted_X(self, X, dtype=[np.float32, np.float64])
        return X.astype(np.float32, copy=False)

    def _fit_targets(self, Y, specs, inputs, keep, fit_params):
        """What the net trains on: ``(Y, specs)`` from the encoded targets.

        ``keep`` marks the rows of the caller's X that were kept (rows with no
        label at all are dropped); ``fit_params`` are the extra arguments of
        ``fit``, refused here. Subclasses override it to train on something
        else than the estimator's own tasks (soft teacher targets, one branch
        per scenario)."""
        if fit_params:
            raise TypeError(
                f"{type(self).__name__}.fit got unexpected arguments "
                f"{sorted(fit_params)}."
            )
        return Y, specs

    def _fit_weights(self, W, specs, train_specs, inputs):
        """The (n, len(train_specs)) weights of the training tasks from the
        (n, K) weights ``W`` of the estimator's own tasks. A subclass whose
        ``_fit_targets`` trains other tasks than its own (one branch per
        scenario) overrides it, so every training column keeps its rows'
        weights."""
        return W

    def _fit(self, X_input, y_input, sample_weight=None, **fit_params):
        X, y = self._validate_xy(X_input, y_input)
        sample_weight = check_sample_weight(sample_weight, len(X))
        multi = y.ndim == 2 and y.shape[1] > 1
        y2 = y.reshape(len(y), -1)
        if y2.ndim != 2 or y2.shape[1] == 0:
            raise ValueError(f"y must be 1-D or 2-D (n, n_tasks), got {y.shape}.")
        keep = drop_unlabelled_rows(y2)
        X, y2 = X[keep], y2[keep]
        if sample_weight is not None:
            sample_weight = sample_weight[keep]
        inputs, input_spec, fitted_inputs = self._fit_inputs(
            X, X_input, sample_weight=sample_weight
        )
        names = task_names_of(y_input, y2.shape[1]) if multi else [_name_of(y_input)]
        specs = resolve_tasks(y2, names)
        for spec in specs:
            if spec.kind == "regression":
                raise ValueError(
                    f"Unknown label type: continuous (task {spec.name!r} of y). "
                    "A classifier needs class labels in y: binarize the values "
                    "(e.g. y > threshold), or to predict a number use a "
                    "regression task of a model that has them (GalleryEmbedder)."
                )
        if multi:
            for spec in specs:
                if spec.kind != "binary":
                    raise ValueError(
                        f"Task {spec.name!r} has {len(spec.classes)} classes; "
                        "with several tasks (2-D y) every task must be binary. "
                        "Fit a multiclass task alone as 1-D y."
                    )
        Y = encode_targets(y2, specs)
        class_weight = resolve_class_weight(
            getattr(self, "class_weight", None), specs, Y
        )
        # Unweighted (no sample_weight, class_weight=None), the net trains on
        # the plain (n, K) target, exactly as before weights existed.
        weighted = sample_weight is not None or any(
            table is not None and set(table.values()) != {1.0} for table in class_weight
        )
        W = row_weights(Y, specs, class_weight, sample_weight) if weighted else None
        Y, train_specs = self._fit_targets(Y, specs, inputs, keep, fit_params)
        if W is not None:
            W = self._fit_weights(W, specs, train_specs, inputs)
        Y = with_weights(Y, W)
        net, config = self._train(inputs, Y, train_specs, input_spec)
        extras = self._fitted_extras(net, inputs)
        check_collapsed_tasks(self, net, inputs)
        vars(self).update(fitted_inputs)
        vars(self).update(extras)

        self.net_ = net
        self._net_config_ = config
        self.history_ = net.history
        self.n_iter_, self.best_epoch_ = fitted_epochs(net)
        self.task_specs_ = specs
        self.class_weight_ = class_weight
        self._train_specs_ = train_specs
        self.n_tasks_ = len(specs)
        self.task_names_ = np.asarray(names, dtype=object)
        # score() matches y's columns to the tasks by name when fit saw names.
        self._task_names_from_frame_ = bool(multi and has_column_names(y_input))
        self.classes_ = [s.classes for s in specs] if multi else specs[0].classes
        return self

    def _multi(self) -> bool:
        return isinstance(self.classes_, list)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities: (n, n_classes) for one task, (n, K) positive
        class probabilities for K tasks.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs with the columns seen in fit.

        Returns
        -------
        ndarray of shape (n_samples, n_classes) or (n_samples, n_tasks)
        """
        if "net_" not in vars(self):  # a fitted model has net_: skip the scan
            check_is_fitted(self)
        outputs = self.net_.task_outputs(
            self._predict_inputs(X), batch_size=self.batch_size
        )
        if self._multi():
            return np.column_stack([torch.sigmoid(o.double()).numpy() for o in outputs])
        (out,) = outputs
        return class_probabilities(out)

    def predict(self, X) -> np.ndarray:
        """Labels from ``classes_``: (n,) for one task, (n, K) for K tasks.

        With several tasks, a task's label is its positive class where the
        positive-class probability is above 0.5.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs with the columns seen in fit.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_tasks)
        """
        proba = self.predict_proba(X)
        if self._multi():
            index = (proba > 0.5).astype(int)
            return np.column_stack(
                [c[index[:, k]] for k, c in enumerate(self.classes_)]
            )
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy; with K > 1 tasks, the mean over tasks of each task's
        accuracy on its labelled rows (missing labels are skipped).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs with the columns seen in fit.
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            True labels; with several tasks one column per task, NaN or None
            where a label is missing. When fit was given a DataFrame, a
            DataFrame y is matched to the tasks by column name (any order;
            unknown or missing names raise ValueError); otherwise columns are
            taken in the order of ``task_names_``.
        sample_weight : array-like of shape (n_samples,), optional
            Row weights of each accuracy.

        Returns
        -------
        float
        """
        if not self._multi():
            return super().score(X, y, sample_weight=sample_weight)
        y = y_in_task_order(self, y)
        y = np.asarray(y, dtype=object).reshape(len(y), -1)
        if y.shape[1] != self.n_tasks_:
            raise ValueError(
                f"y has {y.shape[1]} column(s) but the model was fit on "
                f"{self.n_tasks_} tasks; pass one column per task."
            )
        pred = self.predict(X)
        weights = None if sample_weight is None else np.asarray(sample_weight)
        missing = missing_mask(y)
        accuracies = []
        for k in range(y.shape[1]):
            rows = ~missing[:, k]
            hits = (pred[rows, k] == y[rows, k]).astype(float)
            w = None if weights is None else weights[rows]
            accuracies.append(np.average(hits, weights=w) if rows.any() else np.nan)
        return float(np.nanmean(accuracies))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.classifier_tags.multi_label = True
        return tags
