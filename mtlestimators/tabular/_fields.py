"""Field embeddings for tabular multi-task models (MSSM paper, section 2.1).

Every input column is a *field*. A categorical field gets an embedding table
with two reserved rows, one for categories unseen in fit and one for missing
values; a numeric field is embedded by one of the encodings of Gorishniy,
Rubachev & Babenko (NeurIPS 2022, "On Embeddings for Numerical Features in
Tabular Deep Learning"): the linear projection ``e_i = x_i v_i + b_i``,
piecewise-linear encoding on quantile bins followed by a per-field linear map
("Q-L"), or periodic features followed by a linear map and ReLU shared by
the fields ("PLR", its "lite" variant). A missing numeric value (NaN) gets a
learned vector of its own field. All fields embed to ``embedding_dim``.

The scikit-learn side (:class:`FieldEncoder`) turns a validated X into integer
codes and standardized numbers; the torch side (:class:`FieldEmbedding`) turns
those into a (B, n_fields, embedding_dim) tensor in the column order of X.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import rtdl_num_embeddings as rtdl
import torch
from torch import nn

from .._core.weights import weighted_mean_std

UNSEEN, MISSING, FIRST_CATEGORY = 0, 1, 2
NUMERIC_EMBEDDINGS = ("linear", "piecewise_linear", "periodic")
# The quantile bins are computed on at most this many rows of a column (a
# fixed-seed sample beyond it): torch.quantile refuses more than 2**24 values,
# and a million rows place 48 quantiles to within ~0.1 percentile.
_MAX_BIN_ROWS = 2**20


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
        Standardization of the numeric fields over their non-missing values
        (z-scores; scale 1 for a constant column, mean 0 and scale 1 for a
        column with no value).
    names : list of str
        Field names (column names, or ``x<i>``).
    bins : tuple of tuple of float or None
        Piecewise-linear encoding bin edges of each numeric field, on the
        standardized scale (None unless fitted with ``n_bins``).
    n_bins : int or None
        The ``n_bins`` the bins were computed with.
    """

    categorical: np.ndarray
    vocabularies: list
    means: np.ndarray
    scales: np.ndarray
    names: list
    bins: tuple | None = None
    n_bins: int | None = None

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        categorical: np.ndarray,
        names,
        n_bins: int | None = None,
        sample_weight=None,
    ) -> FieldEncoder:
        """Learn the categories, the numeric standardization and (with
        ``n_bins``) the quantile bins from X; with ``sample_weight``, rows of
        weight 0 are left out and the means and scales are weighted, as if
        each row were repeated its weight times."""
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
        # Over the non-missing values of each column (NaN is a missing value).
        weights = np.ones(len(numeric)) if sample_weight is None else sample_weight
        means, scales = weighted_mean_std(numeric, weights)
        scales = np.where(scales > 0, scales, 1.0)
        encoder = cls(categorical, vocabularies, means, scales, list(names))
        if n_bins is not None:
            rows = numeric if counted is None else numeric[counted]
            standardized = ((rows - means) / scales).astype(np.float32)
            if counted is not None:
                standardized = _repeat_by_weight(standardized, sample_weight[counted])
            encoder.bins = tuple(
                quantile_bins(standardized[:, k], int(n_bins))
                for k in range(standardized.shape[1])
            )
            encoder.n_bins = int(n_bins)
        return encoder

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


def _repeat_by_weight(rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The rows a weighted fit bins on: each repeated its weight times when
    the weights are whole numbers (so integer weights give the bins of the
    repeated rows, as the means and scales are), else each once."""
    whole = np.all(weights == np.round(weights))
    if not whole or np.all(weights == 1) or weights.sum() > _MAX_BIN_ROWS:
        return rows
    return np.repeat(rows, weights.astype(np.int64), axis=0)


def quantile_bins(values: np.ndarray, n_bins: int) -> tuple[float, ...]:
    """Bin edges of the piecewise-linear encoding of one (standardized) column:
    ``rtdl_num_embeddings.compute_bins``, the quantiles of the non-missing
    values with repeated edges removed, so a column with few distinct values
    gets fewer bins (a binary column one bin). A column with fewer than two
    distinct values (constant, or all missing), which ``compute_bins``
    refuses, gets the single bin ``[v, v + 1]``: its encoding is then a
    constant, as the column is."""
    values = values[~np.isnan(values)]
    if len(values) > _MAX_BIN_ROWS:
        rows = np.random.RandomState(0).choice(len(values), _MAX_BIN_ROWS, False)
        values = values[rows]
    distinct = np.unique(values)
    if len(distinct) < 2:
        low = float(distinct[0]) if len(distinct) else 0.0
        return (low, low + 1.0)
    if len(values) <= 2:  # compute_bins needs 1 < n_bins < rows
        return (float(distinct[0]), float(distinct[-1]))
    with warnings.catch_warnings():
        # A single bin (a binary column) is intended here, not worth a warning.
        warnings.filterwarnings("ignore", message=".*just two bin edges")
        (edges,) = rtdl.compute_bins(
            torch.as_tensor(values[:, None]), n_bins=min(n_bins, len(values) - 1)
        )
    return tuple(float(v) for v in edges.tolist())


def _numeric_block(X, categorical, names) -> np.ndarray:
    """The numeric columns of X as float64, NaN for a missing value (NaN,
    None or ``pd.NA``, which a DataFrame with nullable dtypes gives in an
    object array); infinity is refused."""
    columns = np.flatnonzero(~categorical)
    block = X[:, columns]
    if block.dtype == object:
        missing = pd.isna(block)
        if missing.any():
            block = block.copy()
            block[missing] = np.nan
    try:
        block = np.asarray(block, dtype=np.float64)  # TypeError for a dict
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
    bad = np.isinf(block)
    if bad.any():
        j = columns[np.flatnonzero(bad.any(axis=0))[0]]
        raise ValueError(
            f"Input X contains infinity in numeric field {names[j]!r} "
            f"(column {j}). Replace it with a finite value, or with NaN to mark "
            "it missing (a missing numeric value gets its field's learned "
            "missing embedding)."
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
    numeric_embedding : {"linear", "piecewise_linear", "periodic"}
        How a (standardized) numeric value becomes a vector: ``x v + b``;
        ``rtdl_num_embeddings.PiecewiseLinearEmbeddings`` (version "B", no
        activation: the paper's Q-L on quantile bins plus a linear term, with
        the piecewise part starting at zero, so that a field starts as
        ``"linear"`` and learns its bends); or ``PeriodicEmbeddings`` with
        ``lite=True``: the paper's PLR with one linear layer and ReLU shared by
        the fields (each field keeps its own frequencies).
    numeric_options : dict or None
        ``{"bins": ...}`` (one tuple of edges per numeric field) for
        ``"piecewise_linear"``; ``{"n_frequencies": k, "frequency_scale":
        sigma}`` for ``"periodic"``. Plain numbers rather than tensors, so
        that they are module constructor arguments: skorch re-creates the
        module from them, and ``warm_start`` compares their ``repr``.

    A NaN numeric value is a missing value: it gets its field's learned
    missing vector (zero at initialization, like a categorical field's
    missing row), whatever the encoding.
    """

    # Embeddings, not feature-mixing weights: an optimizer's weight_decay
    # leaves them alone (decayed_parameters in _core/net.py).
    no_weight_decay = True

    def __init__(
        self,
        cardinalities,
        n_numeric: int,
        embedding_dim: int,
        field_order,
        numeric_embedding: str = "linear",
        numeric_options: dict | None = None,
    ):
        super().__init__()
        d = int(embedding_dim)
        n_numeric = int(n_numeric)
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
        if numeric_embedding not in NUMERIC_EMBEDDINGS:
            raise ValueError(
                f"numeric_embedding={numeric_embedding!r} is not one of "
                f"{list(NUMERIC_EMBEDDINGS)}."
            )
        options = dict(numeric_options or {})
        self.numeric_embedding = numeric_embedding
        self.numeric_layer = None
        if numeric_embedding == "linear" or not n_numeric:
            # N(0, 1) like nn.Embedding, so numeric and categorical fields
            # start on the same scale.
            self.numeric_weight = nn.Parameter(torch.randn(n_numeric, d))
            self.numeric_bias = nn.Parameter(torch.zeros(n_numeric, d))
        elif numeric_embedding == "piecewise_linear":
            bins = [torch.as_tensor(b, dtype=torch.float32) for b in options["bins"]]
            if len(bins) != n_numeric:
                raise ValueError(
                    f"numeric_options['bins'] has {len(bins)} entries for "
                    f"{n_numeric} numeric fields."
                )
            with warnings.catch_warnings():
                # One bin is how a binary or constant column is encoded.
                warnings.filterwarnings("ignore", message=".*just two bin edges")
                # Version "B" (the package's newer one): linear +
                # piecewise-linear, the latter zero at the start. Against "A"
                # (the bins alone), MSSM and MMoE on Yeast, wa_churn and
                # CPS1988, seeds 0 and 1: ahead in 10 of 12 fits, mean +0.0037
                # mean AUC, from -0.0023 to +0.0107
                # (benchmarks/piecewise_versions.py,
                # docs/results/piecewise_versions.md).
                self.numeric_layer = rtdl.PiecewiseLinearEmbeddings(
                    bins, d, activation=False, version="B"
                )
        else:
            self.numeric_layer = rtdl.PeriodicEmbeddings(
                n_numeric,
                d,
                n_frequencies=int(options.get("n_frequencies", 48)),
                frequency_init_scale=float(options.get("frequency_scale", 0.1)),
                activation=True,
                # The "lite" PLR (Gorishniy et al.'s TabR paper): a linear layer
                # shared by the fields. On the family's small tests (MSSM on
                # 300 and 2000 rows: tests/test_export.py, test_mssm.py) the
                # per-field layers (lite=False) fell to chance accuracy at
                # sigma 0.01, 0.3 and 1 and reached 0.76-0.82 at 0.1; lite
                # reached 0.80-0.87 at 0.01 and 0.84-0.98 at 0.1, with fewer
                # parameters.
                lite=True,
            )
        self.numeric_missing = nn.Parameter(torch.zeros(n_numeric, d))
        self.n_numeric = n_numeric
        self.register_buffer(
            "order", torch.as_tensor(list(field_order), dtype=torch.long)
        )
        self.embedding_dim = d

    @property
    def n_fields(self) -> int:
        return len(self.order)

    def __setstate__(self, state):
        super().__setstate__(state)
        # A module pickled before the numeric encodings and missing values
        # (mtlestimators 0.x before issue 13): the linear encoding, and a
        # missing value's embedding of zeros (such a model never saw one).
        if "n_numeric" not in self.__dict__:
            self.numeric_embedding = "linear"
            self.numeric_layer = None
            self.n_numeric = int(self.numeric_weight.shape[0])
            missing = torch.zeros_like(self.numeric_weight)
            self.numeric_missing = nn.Parameter(missing, requires_grad=False)

    def embed_numeric(self, numeric: torch.Tensor) -> torch.Tensor:
        """(B, n_numeric) standardized values, NaN for missing -> (B, n_num, d)."""
        missing = torch.isnan(numeric)
        x = torch.where(missing, torch.zeros_like(numeric), numeric)
        if self.numeric_layer is None:
            num = x.unsqueeze(-1) * self.numeric_weight + self.numeric_bias
        else:
            num = self.numeric_layer(x)
        return torch.where(missing.unsqueeze(-1), self.numeric_missing, num)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        cat = self.table(categorical + self.offsets)  # (B, n_cat, d)
        if self.n_numeric:
            num = self.embed_numeric(numeric)  # (B, n_num, d)
        else:
            num = cat.new_zeros((cat.shape[0], 0, self.embedding_dim))
        return torch.cat([cat, num], dim=1)[:, self.order]  # (B, n_fields, d)
