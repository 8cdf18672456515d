"""The UCI Adult (Census Income) data, bundled (CC BY 4.0; see data/README.md)."""

from __future__ import annotations

from importlib import resources

import pandas as pd
from sklearn.utils import Bunch

ADULT_COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
)
_NUMERIC = (
    "age",
    "fnlwgt",
    "education-num",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
)


def load_adult() -> pd.DataFrame:
    """The 32,561 rows of the Adult training split as a DataFrame.

    Categorical columns are pandas ``category`` dtype; unknown values ("?") are
    missing (NaN). ``income`` is the original ``"<=50K"`` / ``">50K"`` label.
    """
    path = resources.files(__package__) / "data" / "adult.data.gz"
    with resources.as_file(path) as file:
        frame = pd.read_csv(
            file,
            header=None,
            names=list(ADULT_COLUMNS),
            skipinitialspace=True,
            na_values="?",
            compression="gzip",
        )
    frame = frame.dropna(how="all")
    for column in ADULT_COLUMNS:
        if column not in _NUMERIC:
            frame[column] = frame[column].astype("category")
    return frame.reset_index(drop=True)


def load_adult_multitask() -> Bunch:
    """Adult as a two-task problem: income > 50K and never married.

    The classic multi-task pair (used by MMoE, Ma et al. KDD 2018, on the
    census data): task ``income`` is 1 when income is ``>50K``; task
    ``never_married`` is 1 when marital status is ``Never-married``. The
    ``marital-status`` and ``income`` columns are removed from the features.

    Returns
    -------
    Bunch
        ``data`` (DataFrame, 13 feature columns), ``target`` (DataFrame with
        integer columns ``income`` and ``never_married``),
        ``categorical_features`` and ``numeric_features`` (lists of column
        names), ``frame`` (the full table).
    """
    frame = load_adult()
    target = pd.DataFrame(
        {
            "income": (frame["income"] == ">50K").astype(int),
            "never_married": (frame["marital-status"] == "Never-married").astype(int),
        }
    )
    data = frame.drop(columns=["income", "marital-status"])
    categorical = [c for c in data.columns if c not in _NUMERIC]
    return Bunch(
        data=data,
        target=target,
        categorical_features=categorical,
        numeric_features=[c for c in data.columns if c in _NUMERIC],
        frame=frame,
    )
