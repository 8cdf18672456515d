"""Field embeddings for tabular multi-task models (MSSM paper, section 2.1).

Every input column is a *field*. A categorical field gets an embedding table
with two reserved rows, one for categories unseen in fit and one for missing
values; a numeric field gets a learned per-field projection
``e_i = x_i v_i + b_i``. All fields embed to ``embedding_dim``.

The scikit-learn side (:class:`FieldEncoder`) turns a validated X into integer
codes and standardized numbers; the torch side (:class:`FieldEmbedding`) turns
those into a (B, n_fields, embedding_dim) tensor in the column order of X.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._core.weights import weighted_mean_std

UNSEEN, MISSING, FIRST_CATEGORY = 0, 1, 2


def categorical_mask(categorical_features, X_input, n_features: int, feature_names):
    """Boolean mask of categorical columns, read like
    ``HistGradientBoostingClassifier(categorical_features=...)``: None, a
    boolean mask, integer indices, column names, or ``"from_dtype"`` (pandas
    ``category``, ``object``, ``string`` and ``bool`` columns)."""
    arg = "categorical_features"
    if categorical_features is None:
        return np.zeros(n_features, dtype=bool)
    if isinstance(categorical_features, str):
        if categorical_features != "from_dtype":
            raise ValueError(
                f"{arg}={categorical_features!r} is not understood; use "
                "'from_dtype', None, a boolean mask, indices or column names."
            )
        dtypes = getattr(X_input, "dtypes", None)
        if dtypes is None:
            return np.zeros(n_features, dtype=bool)
        return np.array(
            [
                isinstance(d, pd.CategoricalDtype)
                or pd.api.types.is_object_dtype(d)
                or pd.api.types.is_string_dtype(d)
                or pd.api.types.is_bool_dtype(d)
                for d in dtypes
            ]
        )
    values = np.asarray(categorical_features)
    if values.size == 0:
        return np.zeros(n_features, dtype=bool)
    if values.dtype == bool:
        if values.shape != (n_features,):
            raise ValueError(
                f"{arg} as a boolean mask needs {n_features} entries (one per "
                f"column of X), got {values.shape[0]}."
            )
        return values.copy()
    mask = np.zeros(n_features, dtype=bool)
    if values.dtype.kind in "iu":
        if values.size and (values.min() < -n_features or values.max() >= n_features):
            raise ValueError(
                f"{arg} has indices outside [0, {n_features}); X has {n_features} "
                "columns."
            )
        mask[values] = True
        return mask
    if values.dtype.kind in "UO":
        if feature_names is None:
            raise ValueError(
                f"{arg} names columns, but X has no column names; pass a "
                "DataFrame or give column indices."
            )
        names = list(feature_names)
        unknown = [str(v) for v in values if v not in names]
        if unknown:
            raise ValueError(f"{arg} names unknown columns {unknown}; X has {names}.")
        mask[[names.index(v) for v in values]] = True
        return mask
    raise ValueError(
        f"{arg}={categorical_features!r} is not understood; use 'from_dtype', "
        "None, a boolean mask, indices or column names."
    )


@dataclass
class FieldEncoder:
    """Fitted mapping from validated X to model inputs.

    Attributes
    ----------
    categorical : ndarray of bool
        Which columns are categorical fields.
    vocabularies : list of ndarray
        Known categories of each categorical field, in code order.
    means, scales : ndarray
        Standardization of the numeric fields (z-scores; scale 1 for a
        constant column).
    names : list of str
        Field names (column names, or ``x<i>``).
    """

    categorical: np.ndarray
    vocabularies: list
    means: np.ndarray
    scales: np.ndarray
    names: list

    @classmethod
    def fit(
        cls, X: np.ndarray, categorical: np.ndarray, names, sample_weight=None
    ) -> FieldEncoder:
        """Learn the categories and the numeric standardization from X; with
        ``sample_weight``, rows of weight 0 are left out and the means and
        scales are weighted, as if each row were repeated its weight times."""
        counted = None if sample_weight is None else sample_weight > 0
        vocabularies = []
        for j in np.flatnonzero(categorical):
            column = X[:, j] if counted is None else X[counted, j]
            present = column[~pd.isna(column)]
            # Sorted, so that codes do not depend on the order of the rows.
            unique = sorted(
                pd.unique(present), key=lambda v: (type(v).__name__, str(v))
            )
            vocabularies.append(np.asarray(unique, dtype=object))
        numeric = _numeric_block(X, categorical, names)
        if sample_weight is not None and len(numeric):
            means, scales = weighted_mean_std(numeric, sample_weight)
        else:
            means = numeric.mean(axis=0) if len(numeric) else np.zeros(numeric.shape[1])
            scales = numeric.std(axis=0) if len(numeric) else np.ones(numeric.shape[1])
        scales = np.where(scales > 0, scales, 1.0)
        return cls(categorical, vocabularies, means, scales, list(names))

    @property
    def cardinalities(self) -> list[int]:
        """Rows of each categorical field's table (known + unseen + missing)."""
        return [len(v) + FIRST_CATEGORY for v in self.vocabularies]

    @property
    def field_order(self) -> list[int]:
        """Position of each column among [categorical fields, numeric fields]."""
        cat = np.flatnonzero(self.categorical)
        num = np.flatnonzero(~self.categorical)
        order = np.empty(len(self.categorical), dtype=int)
        order[cat] = np.arange(len(cat))
        order[num] = len(cat) + np.arange(len(num))
        return order.tolist()

    def transform(self, X: np.ndarray) -> dict[str, np.ndarray]:
        codes = np.empty((len(X), len(self.vocabularies)), dtype=np.int64)
        # The lookup tables are built once, not per call: building them
        # dominated a one-row prediction.
        indexes = self.__dict__.get("_indexes")
        if indexes is None:
            indexes = [pd.Index(v) for v in self.vocabularies]
            self.__dict__["_indexes"] = indexes
        for k, j in enumerate(np.flatnonzero(self.categorical)):
            column = X[:, j]
            index = indexes[k].get_indexer(column)
            codes[:, k] = np.where(index >= 0, index + FIRST_CATEGORY, UNSEEN)
            codes[pd.isna(column), k] = MISSING
        numeric = _numeric_block(X, self.categorical, self.names)
        numeric = ((numeric - self.means) / self.scales).astype(np.float32)
        return {"categorical": codes, "numeric": numeric}


def _numeric_block(X, categorical, names) -> np.ndarray:
    columns = np.flatnonzero(~categorical)
    try:
        block = np.asarray(X[:, columns], dtype=np.float64)  # TypeError for a dict
    except ValueError:
        for j in columns:
            try:
                np.asarray(X[:, j], dtype=np.float64)
            except ValueError as exc:
                raise ValueError(
                    f"Numeric field {names[j]!r} (column {j}) holds a value that is "
                    f"not a number ({exc}). Declare it categorical, e.g. "
                    f"categorical_features=[{j}], or pass a DataFrame whose string "
                    "columns are found by categorical_features='from_dtype'."
                ) from None
        raise
    bad = ~np.isfinite(block)
    if bad.any():
        j = columns[np.flatnonzero(bad.any(axis=0))[0]]
        raise ValueError(
            f"Input X contains NaN or infinity in numeric field {names[j]!r} "
            f"(column {j}). Impute it, or declare the column categorical "
            "(categorical_features) so that missing values get their own category."
        )
    return block


class FieldEmbedding(nn.Module):
    """Embeds categorical codes and numeric values to (B, n_fields, d).

    Parameters
    ----------
    cardinalities : list of int
        Table size of each categorical field (codes 0 = unseen, 1 = missing).
    n_numeric : int
        Number of numeric fields.
    embedding_dim : int
    field_order : list of int
        For each output field (column of X), its position among
        [categorical fields, numeric fields].
    """

    def __init__(self, cardinalities, n_numeric: int, embedding_dim: int, field_order):
        super().__init__()
        d = int(embedding_dim)
        total = int(sum(cardinalities))
        self.table = nn.Embedding(max(total, 1), d)
        offsets = np.concatenate([[0], np.cumsum(cardinalities)[:-1]]).astype(np.int64)
        offsets = offsets[: len(cardinalities)]
        self.register_buffer("offsets", torch.as_tensor(offsets))
        with torch.no_grad():
            # Unseen categories (never in the training rows, so never trained)
            # and missing values start as the zero vector: no information
            # rather than a random category. A missing row seen in fit trains.
            for start in offsets.tolist():
                self.table.weight[start + UNSEEN].zero_()
                self.table.weight[start + MISSING].zero_()
        # N(0, 1) like nn.Embedding, so numeric and categorical fields start on
        # the same scale.
        self.numeric_weight = nn.Parameter(torch.randn(int(n_numeric), d))
        self.numeric_bias = nn.Parameter(torch.zeros(int(n_numeric), d))
        self.register_buffer(
            "order", torch.as_tensor(list(field_order), dtype=torch.long)
        )
        self.embedding_dim = d

    @property
    def n_fields(self) -> int:
        return len(self.order)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        cat = self.table(categorical + self.offsets)  # (B, n_cat, d)
        num = (
            numeric.unsqueeze(-1) * self.numeric_weight + self.numeric_bias
        )  # (B, n_num, d)
        return torch.cat([cat, num], dim=1)[:, self.order]  # (B, n_fields, d)
