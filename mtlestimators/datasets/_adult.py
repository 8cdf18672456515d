"""The UCI Adult (Census Income) data, bundled (CC BY 4.0; see data/README.md)."""

from __future__ import annotations

from importlib import resources

import numpy as np
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


SCENARIO_UNSEEN_TASKS = ("Protective-serv", "Tech-support")


def load_adult_scenarios(
    unseen_tasks=SCENARIO_UNSEEN_TASKS,
    test_size: float = 0.25,
    min_frequency: float = 0.01,
    random_state=0,
) -> Bunch:
    """Adult as a multi-scenario relevance problem (AutoTask's setting).

    Each ``occupation`` is a scenario (task id); the label is income > 50K;
    the other columns are numeric features: the six numeric columns as they
    are, the categorical ones (``education`` is left out: it is
    ``education-num`` as text) one-hot encoded, with categories rarer than
    ``min_frequency`` merged into ``<column>=other`` and a missing value as
    ``<column>=missing``. Rows without an occupation are dropped (30,718
    rows remain). The occupations in ``unseen_tasks`` are held out of
    training: all their rows are in the test split.

    Parameters
    ----------
    unseen_tasks : sequence of str, default=("Protective-serv", "Tech-support")
    test_size : float, default=0.25
        Fraction of each seen occupation's rows in the test split
        (stratified by occupation and label).
    min_frequency : float, default=0.01
    random_state : int, default=0
        Seeds the split.

    Returns
    -------
    Bunch
        ``X_train``, ``X_test`` (DataFrames: float feature columns, then the
        ``occupation`` column of strings, last), ``y_train``, ``y_test``
        (int Series, 1 = income > 50K), ``task_column`` ("occupation"),
        ``unseen_tasks`` (list), ``seen_tasks`` (list), ``feature_names``.
    """
    from sklearn.model_selection import train_test_split

    if isinstance(unseen_tasks, str):
        unseen_tasks = (unseen_tasks,)
    frame = load_adult()
    frame = frame[frame["occupation"].notna()].reset_index(drop=True)
    occupation = frame["occupation"].astype(str)
    unknown = sorted(set(unseen_tasks) - set(occupation))
    if unknown:
        raise ValueError(
            f"unseen_tasks {unknown} are not occupations of the Adult data; "
            f"they are {sorted(set(occupation))}."
        )
    y = (frame["income"] == ">50K").astype(int).rename("income")
    held_out = occupation.isin(list(unseen_tasks)).to_numpy()
    seen = np.flatnonzero(~held_out)
    train_rows, test_rows = train_test_split(
        seen,
        test_size=test_size,
        random_state=random_state,
        stratify=scenario_strata(occupation.iloc[seen], y.iloc[seen]),
    )
    test_rows = np.concatenate([test_rows, np.flatnonzero(held_out)])

    # Numeric features first, in the file's order; then one-hot columns whose
    # categories (rare ones merged) are chosen on the training rows only.
    columns = [frame[c].astype(float) for c in _NUMERIC]
    for column in ADULT_COLUMNS:
        if column in _NUMERIC or column in ("education", "occupation", "income"):
            continue
        values = frame[column].astype(object).where(frame[column].notna(), "missing")
        share = values.iloc[train_rows].value_counts(normalize=True)
        kept = set(share.index[share >= min_frequency])
        values = values.where(values.isin(kept), "other")
        for category in sorted(set(values.iloc[train_rows])):
            columns.append(
                (values == category).astype(float).rename(f"{column}={category}")
            )
    X = pd.concat(columns, axis=1)
    X["occupation"] = occupation.astype(object)
    return Bunch(
        X_train=X.iloc[np.sort(train_rows)].reset_index(drop=True),
        X_test=X.iloc[np.sort(test_rows)].reset_index(drop=True),
        y_train=y.iloc[np.sort(train_rows)].reset_index(drop=True),
        y_test=y.iloc[np.sort(test_rows)].reset_index(drop=True),
        task_column="occupation",
        unseen_tasks=list(unseen_tasks),
        seen_tasks=sorted(set(occupation[~held_out])),
        feature_names=[c for c in X.columns if c != "occupation"],
    )


def scenario_strata(task: pd.Series, y: pd.Series) -> np.ndarray:
    """Stratification labels task|label for a split; a stratum with a single
    row falls back to its task, and a task with a single row to the largest
    stratum, so every label has at least two rows."""
    strata = (task.astype(str) + "|" + y.astype(str)).to_numpy(dtype=object)
    for fallback in (task.astype(str).to_numpy(dtype=object), None):
        labels, counts = np.unique(strata, return_counts=True)
        lonely = np.isin(strata, labels[counts < 2])
        if not lonely.any():
            break
        if fallback is None:
            strata[lonely] = labels[np.argmax(counts)]
        else:
            strata[lonely] = fallback[lonely]
    return strata
