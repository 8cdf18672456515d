"""Base of the tabular multi-task family (MSSM and its baselines): X is a
table of categorical and numeric fields, embedded by :class:`FieldEmbedding`."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .._core.base import check_fitted_X
from .._core.classifier import MultiTaskClassifierBase
from .._core.params import InstanceOf, Integer, Options, Plugin, Real, Units
from ._fields import NUMERIC_EMBEDDINGS, UNSEEN, FieldEncoder, categorical_mask


class FieldClassifierBase(MultiTaskClassifierBase):
    """Multi-task classifier over categorical and numeric fields.

    Subclasses store ``categorical_features`` and ``embedding_dim`` and build a
    module whose ``forward(categorical, numeric)`` starts with a
    :class:`~mtlestimators.tabular._fields.FieldEmbedding`. Numeric fields are
    z-scored with the mean and standard deviation of their non-missing
    training values, then embedded as ``numeric_embedding`` says. NaN (or
    None, ``pd.NA``) in a numeric field is a missing value with a learned
    embedding of its own per field; infinity is an error. NaN in a
    categorical field is its own category.
    """

    def __setstate__(self, state):
        # Pickled before lr_schedule existed: those fits kept lr constant.
        if "lr_schedule" in self._get_param_names():
            state = dict(state)
            state.setdefault("lr_schedule", "constant")
        super().__setstate__(state)

    _X_check_params = {"dtype": None, "ensure_all_finite": False}
    _module_prefixes = ("gate",)
    _routed_prefixes = MultiTaskClassifierBase._routed_prefixes + ("gate",)
    # The parameters the family shares (gate: the models that have one).
    _parameter_constraints = {
        "categorical_features": [
            Options(["from_dtype"]),
            None,
            InstanceOf(
                (list, tuple, np.ndarray, pd.Series, pd.Index),
                description="a list or array (mask, indices or names)",
            ),
        ],
        "embedding_dim": [Integer(1)],
        "numeric_embedding": [Options(list(NUMERIC_EMBEDDINGS))],
        "numeric_bins": [Integer(2)],
        "numeric_frequencies": [Integer(1)],
        "numeric_frequency_scale": [Real(0, None, closed="neither")],
        "tower_units": [Units()],
        "gate": [Plugin("gate")],
        "dropout": [Real(0, 1, closed="left")],
    }

    def _fit_inputs(self, X, X_input=None, sample_weight=None):
        names = getattr(self, "feature_names_in_", None)
        mask = categorical_mask(self.categorical_features, X_input, X.shape[1], names)
        if names is None:
            names = [f"x{j}" for j in range(X.shape[1])]
        kind = getattr(self, "numeric_embedding", "linear")
        n_bins = int(self.numeric_bins) if kind == "piecewise_linear" else None
        resume = self.warm_start and hasattr(self, "field_encoder_")
        if (
            resume
            and np.array_equal(mask, self.field_encoder_.categorical)
            and getattr(self.field_encoder_, "n_bins", None) == n_bins
        ):
            # Continue with the fitted codes, scaling and bins: refitting them
            # would attach the trained embeddings to other categories and
            # values. (Other bins make other module arguments, which the
            # warm-start check then refuses.)
            encoder = self.field_encoder_
        else:
            encoder = FieldEncoder.fit(
                X, mask, [str(n) for n in names], n_bins, sample_weight=sample_weight
            )
        spec = {
            "cardinalities": encoder.cardinalities,
            "n_numeric": int((~mask).sum()),
            "field_order": encoder.field_order,
            **numeric_embedding_spec(self, encoder),
        }
        fitted = {"field_encoder_": encoder, "is_categorical_": mask.copy()}
        inputs = encoder.transform(X)
        if encoder is getattr(self, "field_encoder_", None):
            _warn_new_categories(encoder, X, inputs["categorical"])
        return inputs, spec, fitted

    def _predict_inputs(self, X):
        X = check_fitted_X(self, X, **self._X_check_params)
        return self.field_encoder_.transform(X)

    def _module_params(self, specs, input_spec, counts=None, units=None, **params):
        """The module's keyword arguments: the input description, the
        parameters every model of the family shares (outputs, embedding size,
        towers, dropout, and the gate where the model has one), and the
        model's own ``params``."""
        shared = {
            "output_dims": [s.output_dim for s in specs],
            "embedding_dim": int(self.embedding_dim),
            "tower_units": as_tuple(self.tower_units),
            "dropout": float(self.dropout),
        }
        if "gate" in self._module_prefixes:
            shared.update(gate=self.gate, gate_params=self._routed_for("gate"))
        shared.update((k, as_tuple(v)) for k, v in (units or {}).items())
        shared.update((k, int(v)) for k, v in (counts or {}).items())
        return {**input_spec, **shared, **params}

    def _export_adapter(self):
        """The export adapter of :mod:`mtlestimators.export` for field models."""
        from ._export import FieldExportAdapter

        return FieldExportAdapter(self)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = True
        # NaN in a numeric field is a missing value (its own embedding).
        tags.input_tags.allow_nan = True
        return tags


def _warn_new_categories(encoder, X, codes) -> None:
    """Warn (once) that a warm-start continuation's X has categories outside
    the fitted vocabularies: they are encoded as the unseen category."""
    new = {}
    for k, j in enumerate(np.flatnonzero(encoder.categorical)):
        rows = codes[:, k] == UNSEEN
        if rows.any():
            values = pd.unique(pd.Series(X[rows, j], dtype=object))
            new[encoder.names[j]] = (len(values), [str(v) for v in values[:3]])
    if not new:
        return
    fields = "; ".join(
        f"{name!r}: {n} new, e.g. {examples}" for name, (n, examples) in new.items()
    )
    warnings.warn(
        "warm_start=True keeps the categories of the first fit, and X has "
        f"categories it did not see in categorical field(s) ({fields}). They "
        "are encoded as unseen: all of them share the unseen category's "
        "embedding (which this fit now trains, for every category not seen in "
        "the first fit) and get none of their own. To include them as "
        "categories, fit with warm_start=False.",
        UserWarning,
        stacklevel=5,
    )


def numeric_embedding_spec(estimator, encoder) -> dict:
    """The module arguments of the numeric encoding (see ``FieldEmbedding``):
    plain numbers (the fitted bins as tuples of floats), so that the module
    can be re-created from them and ``warm_start`` compares them exactly."""
    kind = getattr(estimator, "numeric_embedding", "linear")
    if kind == "piecewise_linear":
        options = {"bins": encoder.bins}
    elif kind == "periodic":
        options = {
            "n_frequencies": int(estimator.numeric_frequencies),
            "frequency_scale": float(estimator.numeric_frequency_scale),
        }
    else:
        options = {}
    return {"numeric_embedding": kind, "numeric_options": options}


def field_input_width(field_order, embedding_dim) -> int:
    """Width of the flattened field embeddings."""
    return len(field_order) * int(embedding_dim)


def as_tuple(units) -> tuple[int, ...]:
    return tuple(int(u) for u in units)
