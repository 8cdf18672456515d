"""The AutoTask paper's Tables 1-3 on the Adult multi-scenario data, its
discussion ablations, the task_dropout setting, its teacher-then-labels
training protocol, and the serving latency of a single-row ``predict_proba``.

Scenario = occupation, label = income > 50K, two occupations held out of
training as unseen tasks (``mtlestimators.datasets.load_adult_scenarios``).
Each seed draws its own train/test split; 20% of the training rows of every
task are kept aside as calibration data (the paper calibrates each
task-specific model on that task's calibration data); every model trains on
the other 80% (the fit split).

- Table 1: AutoTask (task-id one-hot encoding, uncalibrated) vs the general
  branch of the multi-task DNN baseline, per-task ROC AUC and PR AUC on the
  test split, including the unseen tasks.
- Table 2: AutoTask calibrated per task vs the baseline's task-specific
  branches calibrated per task (Platt scaling on the calibration split).
- Table 3: AutoTask with task_encoding = none / number / onehot.
- Table 4 (section 4.3.2's discussion): causal vs unmasked attention
  (``attention="full"``), concatenation vs sum of T1 and T2
  (``fusion="sum"``, which needs the paper's width e2 = d * e1), and the
  default against the paper's width (``block_embed_dim="paper",
  attention_window=None``).
- Table 5: the default ``task_dropout=0`` (the paper) vs 0.1.
- Table 6 (section 4.1.2's protocol, scaled down to the same 30 : 45
  ratio): distil from a gradient-boosted teacher's out-of-fold
  probabilities, then fine-tune on the labels with ``warm_start``, against
  training on the labels alone.
- Table 7: the same protocol where only part of the fit split keeps its
  labels and the rest carries teacher labels only (the paper's "large
  initial training set" labelled by the teacher).

Run:  python benchmarks/autotask_tables.py [--seeds 5] [--epochs 20]
          [--threads 1] [--arms all]
Writes docs/results/autotask.md, docs/results/autotask.csv and
docs/results/autotask_latency.csv. ``--arms`` picks groups of arms (see
``GROUPS``); ``--latency-only`` redoes the latency section alone;
``--render-only`` rebuilds the page from autotask.csv without fitting. The
page's hand-written reading (between ``<!-- reading -->`` and
``<!-- /reading -->``) is kept across re-runs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from sklearn.model_selection import (
    StratifiedKFold,
    cross_val_predict,
    train_test_split,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from mtlestimators import (
    AutoTaskClassifier,
    MultiTaskDNNClassifier,
    PerTaskCalibratedClassifier,
)
from mtlestimators.datasets import load_adult_scenarios
from mtlestimators.datasets._adult import scenario_strata

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
ENCODINGS = ("none", "number", "onehot")

# AutoTask arms fit on the whole fit split for --epochs epochs: name ->
# parameters changed from the defaults.
AUTOTASK_ARMS = {
    "autotask_none": {"task_encoding": "none"},
    "autotask_number": {"task_encoding": "number"},
    "autotask_onehot": {},
    "autotask_unmasked": {"attention": "full"},
    "autotask_sum": {"fusion": "sum"},
    "autotask_paper": {"block_embed_dim": "paper", "attention_window": None},
    "autotask_td01": {"task_dropout": 0.1},
}
# --arms takes these group names (or "all").
GROUPS = {
    "encodings": ("autotask_none", "autotask_number", "autotask_onehot"),
    "baseline": ("dnn",),
    "ablations": ("autotask_unmasked", "autotask_sum", "autotask_paper"),
    "task_dropout": ("autotask_td01",),
    "protocol": ("protocol",),
    "protocol_small": ("protocol_small",),
}
# The paper: 30 epochs on teacher labels, then 45 on human labels.
DISTIL_SHARE = 30 / 75
# Table 7: share of the fit split that keeps its labels.
LABELLED_FRACTION = 0.25

DESCRIPTIONS = {
    "autotask_onehot": "AutoTask, defaults (task one-hot, causal, concat, "
    "e2 = min(d e1, 64), n_heads 1, task_dropout 0)",
    "autotask_none": "task_encoding='none'",
    "autotask_number": "task_encoding='number'",
    "autotask_unmasked": "attention='full' (no causal mask)",
    "autotask_sum": "fusion='sum' (e2 = d e1)",
    "autotask_paper": "block_embed_dim='paper', attention_window=None (e2 = d e1)",
    "autotask_td01": "task_dropout=0.1 (the default before this run)",
    "dnn_general": "multi-task DNN, general branch",
    "dnn_task": "multi-task DNN, task branches",
    "autotask_onehot_calibrated": "AutoTask defaults, Platt per task",
    "dnn_task_calibrated": "DNN task branches, Platt per task",
    "teacher_hgb": "teacher: HistGradientBoosting on features + one-hot task",
    "autotask_distilled": "distilled from the teacher only ({d} epochs)",
    "autotask_distil_ft": "distilled {d} epochs, then {f} on labels",
    "autotask_labels_short": "labels alone, {f} epochs",
    "teacher_hgb_small": "teacher fit on the labelled {p}% only",
    "autotask_small_distilled": "teacher labels on all rows, {d} epochs",
    "autotask_small_distil_ft": "teacher labels {d} epochs, then {f} on the "
    "labelled {p}%",
    "autotask_small_labels": "labelled {p}% alone, {e} epochs",
    "autotask_small_labels_long": "labelled {p}% alone, {l} epochs (as many "
    "steps as distil + fine-tune)",
}


def per_task_rows(seed, model, proba, X_test, y_test, tasks, fit_s=np.nan):
    occupation = X_test["occupation"].to_numpy()
    y = y_test.to_numpy()
    rows = []
    for task in tasks:
        mask = occupation == task
        if len(np.unique(y[mask])) < 2:
            continue  # one class in this split: AUC undefined
        rows.append(
            {
                "seed": seed,
                "model": model,
                "task": task,
                "roc_auc": roc_auc_score(y[mask], proba[mask]),
                "pr_auc": average_precision_score(y[mask], proba[mask]),
                "log_loss": log_loss(y[mask], proba[mask], labels=[0, 1]),
                "n": int(mask.sum()),
                "fit_s": fit_s,
            }
        )
    return rows


def split(seed: int):
    """The seed's data, and its training rows cut into fit and calibration."""
    data = load_adult_scenarios(random_state=seed)
    X_fit, X_cal, y_fit, y_cal = train_test_split(
        data.X_train,
        data.y_train,
        test_size=0.2,
        random_state=seed,
        stratify=scenario_strata(data.X_train["occupation"], data.y_train),
    )
    return data, X_fit, X_cal, y_fit, y_cal


def schedule(epochs: int) -> dict:
    """Epochs of each phase: the paper's 30 + 45 scaled to ``epochs``."""
    distil = max(1, round(epochs * DISTIL_SHARE))
    tune = max(1, epochs - distil)
    # Labels-alone on the labelled part with as many optimizer steps as the
    # small protocol's distil (all rows) + fine-tune (labelled part) phases.
    long = round(distil / LABELLED_FRACTION) + tune
    return {
        "d": distil,
        "f": tune,
        "e": epochs,
        "l": long,
        "p": round(100 * LABELLED_FRACTION),
    }


def teacher(seed: int):
    """The gradient-boosted teacher: the features as they are plus the task
    id one-hot encoded (an unseen task is all zeros)."""
    return make_pipeline(
        make_column_transformer(
            (
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ["occupation"],
            ),
            remainder="passthrough",
        ),
        HistGradientBoostingClassifier(random_state=seed),
    )


def teacher_labels(seed: int, X, y):
    """Out-of-fold teacher probabilities on (X, y), so that no row's teacher
    label comes from a fit on that row, and the teacher refit on all of X."""
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    oof = cross_val_predict(teacher(seed), X, y, cv=folds, method="predict_proba")
    return oof[:, 1], teacher(seed).fit(X, y)


def selected(arms: str) -> set:
    names = set()
    for group in arms.split(","):
        group = group.strip()
        if group == "all":
            names |= {n for g in GROUPS.values() for n in g}
        elif group in GROUPS:
            names |= set(GROUPS[group])
        else:
            raise SystemExit(
                f"--arms: unknown group {group!r}; use 'all' or a comma list of "
                f"{sorted(GROUPS)}."
            )
    return names | {"autotask_onehot"}  # every table's reference


def run_seed(seed: int, epochs: int, verbose: int, arms: set) -> list[dict]:
    data, X_fit, X_cal, y_fit, y_cal = split(seed)
    tasks = data.seen_tasks + data.unseen_tasks
    rows = []
    phases = schedule(epochs)

    def score(name, model, fit_s=np.nan):
        proba = model.predict_proba(data.X_test)[:, 1]
        rows.extend(
            per_task_rows(seed, name, proba, data.X_test, data.y_test, tasks, fit_s)
        )

    def autotask(max_epochs, **params):
        return AutoTaskClassifier(
            task_column="occupation",
            max_epochs=max_epochs,
            verbose=verbose,
            random_state=seed,
            **params,
        )

    def timed_fit(name, model, *fit_args, **fit_params):
        start = time.perf_counter()
        model.fit(*fit_args, **fit_params)
        fit_s = time.perf_counter() - start
        print(f"seed {seed} {name}: fit {fit_s:.0f} s", flush=True)
        return fit_s

    fitted = {}
    for name, params in AUTOTASK_ARMS.items():
        if name not in arms:
            continue
        model = autotask(epochs, **params)
        fit_s = timed_fit(name, model, X_fit, y_fit)
        score(name, model, fit_s)
        fitted[name] = model

    if "dnn" in arms:
        dnn = MultiTaskDNNClassifier(
            task_column="occupation",
            max_epochs=epochs,
            verbose=verbose,
            random_state=seed,
        )
        fit_s = timed_fit("dnn", dnn, X_fit, y_fit)
        score("dnn_task", dnn, fit_s)
        general = FrozenEstimator(dnn.set_params(branch="general"))
        score("dnn_general", general, fit_s)
        calibrated = PerTaskCalibratedClassifier(
            FrozenEstimator(fitted["autotask_onehot"]), method="sigmoid"
        ).fit(X_cal, y_cal)
        score("autotask_onehot_calibrated", calibrated)
        dnn.set_params(branch="task")
        calibrated_dnn = PerTaskCalibratedClassifier(
            FrozenEstimator(dnn), method="sigmoid"
        ).fit(X_cal, y_cal)
        score("dnn_task_calibrated", calibrated_dnn)

    if "protocol" in arms:
        start = time.perf_counter()
        soft, hgb = teacher_labels(seed, X_fit, y_fit)
        fit_s = time.perf_counter() - start
        print(f"seed {seed} teacher_hgb: cv + fit {fit_s:.0f} s", flush=True)
        score("teacher_hgb", hgb, fit_s)
        student = autotask(phases["d"])
        distil_s = timed_fit(
            "autotask_distilled", student, X_fit, y_fit, soft_target=soft
        )
        score("autotask_distilled", student, distil_s)
        student.set_params(warm_start=True, max_epochs=phases["f"])
        tune_s = timed_fit("autotask_distil_ft", student, X_fit, y_fit)
        score("autotask_distil_ft", student, distil_s + tune_s)
        short = autotask(phases["f"])
        score(
            "autotask_labels_short",
            short,
            timed_fit("labels_short", short, X_fit, y_fit),
        )

    if "protocol_small" in arms:
        X_lab, X_rest, y_lab, _ = train_test_split(
            X_fit,
            y_fit,
            train_size=LABELLED_FRACTION,
            random_state=seed,
            stratify=scenario_strata(X_fit["occupation"], y_fit),
        )
        # The rest's labels are never used: the teacher labels them.
        start = time.perf_counter()
        soft_lab, hgb = teacher_labels(seed, X_lab, y_lab)
        fit_s = time.perf_counter() - start
        score("teacher_hgb_small", hgb, fit_s)
        soft_rest = hgb.predict_proba(X_rest)[:, 1]
        X_all = pd.concat([X_lab, X_rest])
        y_all = pd.concat(
            [
                y_lab,
                pd.Series(
                    (soft_rest > 0.5).astype(int), index=X_rest.index, name=y_lab.name
                ),
            ]
        )
        soft_all = np.concatenate([soft_lab, soft_rest])
        student = autotask(phases["d"])
        distil_s = timed_fit(
            "autotask_small_distilled", student, X_all, y_all, soft_target=soft_all
        )
        score("autotask_small_distilled", student, distil_s)
        student.set_params(warm_start=True, max_epochs=phases["f"])
        tune_s = timed_fit("autotask_small_distil_ft", student, X_lab, y_lab)
        score("autotask_small_distil_ft", student, distil_s + tune_s)
        for name, n_epochs in (
            ("autotask_small_labels", epochs),
            ("autotask_small_labels_long", phases["l"]),
        ):
            alone = autotask(n_epochs)
            score(name, alone, timed_fit(name, alone, X_lab, y_lab))
    return rows, fitted["autotask_onehot"], data


def latency(model, data, calls: int = 1000) -> dict:
    """Single-row predict_proba vs the raw module forward on the same row."""
    torch.set_num_threads(1)
    row = data.X_test.iloc[[0]]
    inputs = model._predict_inputs(row)
    features = torch.as_tensor(inputs["features"])
    task = torch.as_tensor(inputs["task"])
    module = model.net_.module_.eval()

    def timed(fn):
        for _ in range(50):  # warm-up
            fn()
        out = []
        for _ in range(calls):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
        return np.array(out) * 1e3  # ms

    def raw():
        with torch.no_grad():
            torch.sigmoid(module(features, task)[0])

    wrapped = timed(lambda: model.predict_proba(row))
    array_row = row.to_numpy()  # an object array: 36 numbers and the task id
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no feature names
        as_array = timed(lambda: model.predict_proba(array_row))
    bare = timed(raw)
    result = {
        "predict_proba_median_ms": float(np.median(wrapped)),
        "predict_proba_p99_ms": float(np.percentile(wrapped, 99)),
        "module_median_ms": float(np.median(bare)),
        "module_p99_ms": float(np.percentile(bare, 99)),
    }
    result["ndarray_median_ms"] = float(np.median(as_array))
    result["ndarray_p99_ms"] = float(np.percentile(as_array, 99))
    result["ndarray_ratio"] = result["ndarray_median_ms"] / result["module_median_ms"]
    result["overhead_ratio"] = (
        result["predict_proba_median_ms"] / result["module_median_ms"]
    )
    # Batch throughput on the whole test split.
    X = data.X_test
    batch = model._predict_inputs(X)
    tensors = {k: torch.as_tensor(v) for k, v in batch.items()}
    reps = []
    for _ in range(5):
        start = time.perf_counter()
        model.predict_proba(X)
        reps.append(time.perf_counter() - start)
    bare_reps = []
    for _ in range(5):
        start = time.perf_counter()
        with torch.no_grad():
            for s in range(0, len(X), model.batch_size):
                module(**{k: v[s : s + model.batch_size] for k, v in tensors.items()})
        bare_reps.append(time.perf_counter() - start)
    result["batch_rows_per_s"] = len(X) / statistics.median(reps)
    result["module_batch_rows_per_s"] = len(X) / statistics.median(bare_reps)
    return result


def summarize(frame: pd.DataFrame, models, tasks, metric: str) -> pd.DataFrame:
    cells = {}
    for model in models:
        sub = frame[frame.model == model]
        column = {}
        for task in tasks:
            values = sub[sub.task == task][metric]
            column[task] = (
                f"{100 * values.mean():.2f} ± {100 * values.std(ddof=1):.2f}"
                if len(values)
                else "n/a"
            )
        cells[model] = column
    return pd.DataFrame(cells)


def per_seed_means(frame, model, tasks, metric) -> pd.Series:
    """The mean over ``tasks`` of each seed (tasks with one test class are
    left out, the same ones for every model of a seed)."""
    sub = frame[(frame.model == model) & frame.task.isin(tasks)]
    return sub.groupby("seed")[metric].mean()


def mean_over(frame, model, tasks, metric):
    per_seed = per_seed_means(frame, model, tasks, metric)
    if not len(per_seed):
        return "n/a"
    return f"{100 * per_seed.mean():.2f} ± {100 * per_seed.std(ddof=1):.2f}"


def paired(frame, a, b, tasks, metric):
    """a - b of the per-seed means: mean ± sd over seeds (seeds where a > b)."""
    diff = (
        per_seed_means(frame, a, tasks, metric)
        - per_seed_means(frame, b, tasks, metric)
    ).dropna()
    if not len(diff):
        return "n/a"
    better = int((diff > 0).sum())
    return (
        f"{100 * diff.mean():+.2f} ± {100 * diff.std(ddof=1):.2f} "
        f"({better}/{len(diff)})"
    )


def table(frame, models, seen, unseen, metric, label):
    models = [m for m in models if m in set(frame.model)]
    body = summarize(frame, models, seen + unseen, metric)
    body.index = [t + (" (unseen)" if t in unseen else "") for t in body.index]
    body.loc["mean over seen tasks"] = [
        mean_over(frame, m, seen, metric) for m in models
    ]
    body.loc["mean over unseen tasks"] = [
        mean_over(frame, m, unseen, metric) for m in models
    ]
    return f"{label}\n\n{body.to_markdown()}\n"


MEAN_COLUMNS = (
    ("roc_auc", "seen", "seen ROC"),
    ("roc_auc", "unseen", "unseen ROC"),
    ("pr_auc", "seen", "seen PR"),
    ("pr_auc", "unseen", "unseen PR"),
)


def summary_table(frame, seen, unseen, phases) -> str:
    groups = {"seen": seen, "unseen": unseen}
    lines = []
    for model in dict.fromkeys(frame.model):
        sub = frame[frame.model == model]
        fit_s = sub.groupby("seed").fit_s.first().median()
        row = {"arm": model, "what": DESCRIPTIONS.get(model, "").format(**phases)}
        for metric, group, name in MEAN_COLUMNS:
            row[name] = mean_over(frame, model, groups[group], metric)
        row["fit s (median)"] = "" if np.isnan(fit_s) else f"{fit_s:.0f}"
        lines.append(row)
    return pd.DataFrame(lines).to_markdown(index=False)


# (a, b, what the difference measures): a - b in the paired table.
PAIRS = (
    ("autotask_onehot", "dnn_general", "Table 1: AutoTask - DNN general"),
    (
        "autotask_onehot_calibrated",
        "dnn_task_calibrated",
        "Table 2: both calibrated, AutoTask - DNN task branches",
    ),
    ("autotask_number", "autotask_none", "Table 3: task number - no task id"),
    ("autotask_onehot", "autotask_none", "Table 3: one-hot - no task id"),
    ("autotask_onehot", "autotask_number", "Table 3: one-hot - task number"),
    ("autotask_unmasked", "autotask_onehot", "Table 4: unmasked - causal"),
    (
        "autotask_paper",
        "autotask_onehot",
        "Table 4: paper's width (e2 = d e1) - default width (e2 = 64)",
    ),
    ("autotask_sum", "autotask_paper", "Table 4: sum - concat, both e2 = d e1"),
    ("autotask_sum", "autotask_onehot", "Table 4: sum - default"),
    ("autotask_onehot", "autotask_td01", "Table 5: task_dropout 0 - 0.1"),
    (
        "autotask_distil_ft",
        "autotask_onehot",
        "Table 6: distil + fine-tune - labels alone, same epochs ({e})",
    ),
    (
        "autotask_distil_ft",
        "autotask_labels_short",
        "Table 6: distil + fine-tune - the fine-tune epochs ({f}) alone",
    ),
    (
        "autotask_distilled",
        "autotask_onehot",
        "Table 6: distilled only ({d} epochs) - labels alone ({e})",
    ),
    (
        "autotask_distil_ft",
        "autotask_distilled",
        "Table 6: what the {f} fine-tune epochs add",
    ),
    ("autotask_distil_ft", "teacher_hgb", "Table 6: student - teacher"),
    (
        "autotask_small_distil_ft",
        "autotask_small_labels",
        "Table 7: distil + fine-tune - labelled part alone, {e} epochs",
    ),
    (
        "autotask_small_distil_ft",
        "autotask_small_labels_long",
        "Table 7: distil + fine-tune - labelled part alone, {l} epochs",
    ),
    (
        "autotask_small_distilled",
        "autotask_small_labels",
        "Table 7: distilled only ({d} epochs) - labelled part alone, {e} epochs",
    ),
    (
        "autotask_small_distil_ft",
        "autotask_small_distilled",
        "Table 7: what the {f} fine-tune epochs add",
    ),
    (
        "autotask_small_distilled",
        "autotask_onehot",
        "Table 7 vs 6: distilled only, {p}% labelled - all labels, {e} epochs",
    ),
    ("autotask_small_distil_ft", "teacher_hgb_small", "Table 7: student - teacher"),
)


def paired_table(frame, seen, unseen, phases) -> str:
    groups = {"seen": seen, "unseen": unseen}
    present = set(frame.model)
    lines = []
    for a, b, what in PAIRS:
        if a not in present or b not in present:
            continue
        row = {"difference": what.format(**phases), "a - b": f"{a} - {b}"}
        for metric, group, name in MEAN_COLUMNS:
            row[name] = paired(frame, a, b, groups[group], metric)
        lines.append(row)
    return pd.DataFrame(lines).to_markdown(index=False)


LATENCY_HEADING = "## Serving latency"
READING_START = "<!-- reading -->"
READING_END = "<!-- /reading -->"


def latency_section(serve: dict, command: str, load: str, during_run=False) -> str:
    return (
        f"{LATENCY_HEADING} (one CPU thread)\n\n"
        "The seed-0 AutoTask model (task_encoding='onehot', fit on seed 0's "
        "fit split; `--latency-only` refits it the same way); one test row "
        "given as a 1-row DataFrame "
        "(the wrapper validates it, reads the task id, standardizes, and "
        "runs the module) vs the module's forward on the same row's "
        "prepared tensors. Median and p99 over 1,000 calls after 50 "
        "warm-up calls. Re-run this section alone with `--latency-only` "
        "on an otherwise idle machine.\n\n"
        "| measure | value |\n| --- | --- |\n"
        f"| single-row predict_proba (DataFrame row), median | "
        f"{serve['predict_proba_median_ms']:.3f} ms |\n"
        f"| single-row predict_proba (DataFrame row), p99 | "
        f"{serve['predict_proba_p99_ms']:.3f} ms |\n"
        f"| single-row predict_proba (ndarray row), median | "
        f"{serve['ndarray_median_ms']:.3f} ms |\n"
        f"| single-row predict_proba (ndarray row), p99 | "
        f"{serve['ndarray_p99_ms']:.3f} ms |\n"
        f"| raw module forward on the same row, median | "
        f"{serve['module_median_ms']:.3f} ms |\n"
        f"| raw module forward, p99 | {serve['module_p99_ms']:.3f} ms |\n"
        f"| predict_proba (DataFrame) / module, medians | "
        f"{serve['overhead_ratio']:.2f}x |\n"
        f"| predict_proba (ndarray) / module, medians | "
        f"{serve['ndarray_ratio']:.2f}x |\n"
        f"| batch predict_proba, test split | "
        f"{serve['batch_rows_per_s']:,.0f} rows/s |\n"
        f"| raw module, same batches | "
        f"{serve['module_batch_rows_per_s']:,.0f} rows/s |\n\n"
        f"Measured by `{command}`{' during the run' if during_run else ''} "
        f"(load average {load} when it was measured).\n"
    )


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # not on this platform
        return "n/a"


def kept_reading(path: Path) -> str:
    """The hand-written reading of the existing page, kept across re-runs."""
    if not path.exists():
        return ""
    page = path.read_text()
    start, end = page.find(READING_START), page.find(READING_END)
    if start < 0 or end < start:
        return ""
    return page[start : end + len(READING_END)] + "\n"


def command_line(args) -> str:
    command = (
        "python benchmarks/autotask_tables.py "
        f"--seeds {args.seeds} --epochs {args.epochs} --threads {args.threads}"
    )
    if args.arms != "all":
        command += f" --arms {args.arms}"
    return command


def render(frame, seen, unseen, phases, header, reading, latency_text) -> str:
    """The page: the header paragraph, the summary and paired tables, the
    kept reading, Tables 1-7 (those whose arms ran) and the latency section."""
    out = [
        "# AutoTask on the Adult multi-scenario data\n",
        header,
        "## Every arm: means over the seen and the unseen tasks\n",
        "ROC AUC and PR AUC, mean ± sd over seeds of the per-seed mean over "
        "the tasks; fit time in seconds on one thread of a shared machine "
        "(the teachers: 5-fold out-of-fold probabilities plus a refit; the "
        "distil + fine-tune arms: both phases).\n",
        summary_table(frame, seen, unseen, phases) + "\n",
        "## Paired differences\n",
        "a - b of the per-seed means (both models see the same split and "
        "seed), mean ± sd over seeds, and in brackets the seeds where a is "
        "higher. A difference whose sd is as large as its mean is noise.\n",
        paired_table(frame, seen, unseen, phases) + "\n",
    ]
    if reading:
        out.append(reading)
    for metric, name in (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC")):
        out.append(
            table(
                frame,
                ["autotask_onehot", "dnn_general"],
                seen,
                unseen,
                metric,
                f"## Table 1 ({name}): AutoTask vs the baseline's general branch, "
                "uncalibrated",
            )
        )
    if "dnn_task" in set(frame.model):
        for metric, name in (
            ("roc_auc", "ROC AUC"),
            ("pr_auc", "PR AUC"),
            ("log_loss", "log loss x 100, lower is better"),
        ):
            out.append(
                table(
                    frame,
                    [
                        "autotask_onehot_calibrated",
                        "dnn_task_calibrated",
                        "autotask_onehot",
                        "dnn_task",
                    ],
                    seen,
                    unseen,
                    metric,
                    f"## Table 2 ({name}): calibrated AutoTask vs calibrated "
                    "task-specific branches (uncalibrated columns for reference)",
                )
            )
    sections = (
        ("Table 3", "task encodings", [f"autotask_{e}" for e in ENCODINGS]),
        (
            "Table 4",
            "the paper's discussion ablations: causal vs unmasked attention, "
            "concatenation vs sum, default vs the paper's width",
            ["autotask_onehot", "autotask_unmasked", "autotask_paper", "autotask_sum"],
        ),
        (
            "Table 5",
            "task_dropout 0 (the default and the paper) vs 0.1",
            ["autotask_onehot", "autotask_td01"],
        ),
        (
            "Table 6",
            f"the paper's protocol: {phases['d']} epochs on out-of-fold teacher "
            f"probabilities, then {phases['f']} on the labels (warm_start), vs "
            "labels alone",
            [
                "teacher_hgb",
                "autotask_distilled",
                "autotask_distil_ft",
                "autotask_onehot",
                "autotask_labels_short",
            ],
        ),
        (
            "Table 7",
            f"the protocol with a large teacher-labelled set: {phases['p']}% of "
            f"the fit split keeps its labels, the teacher (fit on that {phases['p']}%) "
            "labels the rest",
            [
                "teacher_hgb_small",
                "autotask_small_distilled",
                "autotask_small_distil_ft",
                "autotask_small_labels",
                "autotask_small_labels_long",
            ],
        ),
    )
    present = set(frame.model)
    for number, title, models in sections:
        if not any(m in present for m in models if m != "autotask_onehot"):
            continue
        for metric, name in (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC")):
            out.append(
                table(
                    frame,
                    models,
                    seen,
                    unseen,
                    metric,
                    f"## {number} ({name}): {title}",
                )
            )
    out.append(latency_text)
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument(
        "--arms",
        default="all",
        help="comma list of arm groups: all (default), "
        + ", ".join(GROUPS)
        + " (autotask_onehot, every table's reference, always runs)",
    )
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="fit the seed-0 model and redo only the latency section",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="fit nothing: rebuild the page's tables from autotask.csv, keeping "
        "its header paragraph, reading and latency section",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    arms = selected(args.arms)
    page_path = RESULTS / "autotask.md"
    if args.latency_only:
        data, X_fit, _, y_fit, _ = split(0)
        model = AutoTaskClassifier(
            task_column="occupation", max_epochs=args.epochs, verbose=0, random_state=0
        ).fit(X_fit, y_fit)
        load = load_average()
        serve = latency(model, data)
        command = (
            f"python benchmarks/autotask_tables.py --latency-only --epochs "
            f"{args.epochs} --threads {args.threads}"
        )
        section = latency_section(serve, command, load)
        page = page_path.read_text()
        head = page.split(LATENCY_HEADING)[0]
        page_path.write_text(head + section)
        pd.DataFrame([serve]).to_csv(RESULTS / "autotask_latency.csv", index=False)
        print(section)
        return

    reading = kept_reading(page_path)
    if args.render_only:
        page = page_path.read_text()
        header = page.split("\n\n")[1] + "\n"
        epochs = re.search(r"--epochs (\d+)", header)
        phases = schedule(int(epochs.group(1)) if epochs else args.epochs)
        latency_text = LATENCY_HEADING + page.split(LATENCY_HEADING)[1]
        frame = pd.read_csv(RESULTS / "autotask.csv")
        data = load_adult_scenarios(random_state=0)
        unseen = data.unseen_tasks
        seen = [t for t in data.seen_tasks if t in set(frame.task)]
        page_path.write_text(
            render(frame, seen, unseen, phases, header, reading, latency_text)
        )
        return

    rows, first_model, first_data = [], None, None
    load_start = load_average()
    start = time.perf_counter()
    for seed in range(args.seeds):
        seed_rows, model, data = run_seed(seed, args.epochs, args.verbose, arms)
        rows += seed_rows
        if first_model is None:
            first_model, first_data = model, data
    total = time.perf_counter() - start
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    frame.to_csv(RESULTS / "autotask.csv", index=False)

    load_latency = load_average()
    serve = latency(first_model, first_data)
    unseen = first_data.unseen_tasks
    seen = [t for t in first_data.seen_tasks if t in set(frame.task)]
    phases = schedule(args.epochs)
    command = command_line(args)
    header = (
        f"Made by `{command}` ({total / 60:.0f} min on "
        f"{datetime.date.today().isoformat()}; "
        f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} thread(s); load average {load_start} (1 / 5 / 15 min) "
        "at the start). Per-task figures on the test split: "
        f"mean ± standard deviation over {args.seeds} seeds (each seed draws "
        "its own split and initialization), in percent. Tasks whose test "
        "rows have one class are left out. Every model trains on the seed's "
        f"fit split (80% of the training rows) for {args.epochs} epochs unless "
        "its row says otherwise; AutoTask at the library's defaults unless "
        "its row says otherwise. Per-row scores and fit times are in "
        "`autotask.csv`.\n"
    )
    latency_text = latency_section(serve, command, load_latency, during_run=True)
    page = render(frame, seen, unseen, phases, header, reading, latency_text)
    page_path.write_text(page)
    pd.DataFrame([serve]).to_csv(RESULTS / "autotask_latency.csv", index=False)
    print(page)


if __name__ == "__main__":
    main()
