"""The AutoTask paper's Tables 1-3 on the Adult multi-scenario data, plus the
serving latency of a single-row ``predict_proba``.

Scenario = occupation, label = income > 50K, two occupations held out of
training as unseen tasks (``mtlestimators.datasets.load_adult_scenarios``).
Each seed draws its own train/test split; 20% of the training rows of every
task are kept aside as calibration data (the paper calibrates each
task-specific model on that task's calibration data).

- Table 1: AutoTask (task-id one-hot encoding, uncalibrated) vs the general
  branch of the multi-task DNN baseline, per-task ROC AUC and PR AUC on the
  test split, including the unseen tasks.
- Table 2: AutoTask calibrated per task vs the baseline's task-specific
  branches calibrated per task (Platt scaling on the calibration split).
- Table 3: AutoTask with task_encoding = none / number / onehot.

Run:  python benchmarks/autotask_tables.py [--seeds 5] [--epochs 20]
Writes docs/results/autotask.md and docs/results/autotask.csv.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split

from mtlestimators import (
    AutoTaskClassifier,
    MultiTaskDNNClassifier,
    PerTaskCalibratedClassifier,
)
from mtlestimators.datasets import load_adult_scenarios
from mtlestimators.datasets._adult import scenario_strata

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
ENCODINGS = ("none", "number", "onehot")


def per_task_rows(seed, model, proba, X_test, y_test, tasks):
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


def run_seed(seed: int, epochs: int, verbose: int) -> list[dict]:
    data, X_fit, X_cal, y_fit, y_cal = split(seed)
    tasks = data.seen_tasks + data.unseen_tasks
    rows = []

    def score(name, model):
        start = time.perf_counter()
        proba = model.predict_proba(data.X_test)[:, 1]
        rows.extend(per_task_rows(seed, name, proba, data.X_test, data.y_test, tasks))
        return time.perf_counter() - start

    fitted = {}
    for encoding in ENCODINGS:
        model = AutoTaskClassifier(
            task_column="occupation",
            task_encoding=encoding,
            max_epochs=epochs,
            verbose=verbose,
            random_state=seed,
        )
        start = time.perf_counter()
        model.fit(X_fit, y_fit)
        fit_s = time.perf_counter() - start
        score(f"autotask_{encoding}", model)
        fitted[encoding] = model
        print(f"seed {seed} autotask_{encoding}: fit {fit_s:.0f} s", flush=True)

    dnn = MultiTaskDNNClassifier(
        task_column="occupation",
        max_epochs=epochs,
        verbose=verbose,
        random_state=seed,
    )
    start = time.perf_counter()
    dnn.fit(X_fit, y_fit)
    print(f"seed {seed} dnn: fit {time.perf_counter() - start:.0f} s", flush=True)
    score("dnn_task", dnn)
    general = FrozenEstimator(dnn.set_params(branch="general"))
    score("dnn_general", general)

    calibrated = PerTaskCalibratedClassifier(
        FrozenEstimator(fitted["onehot"]), method="sigmoid"
    ).fit(X_cal, y_cal)
    score("autotask_onehot_calibrated", calibrated)
    dnn.set_params(branch="task")
    calibrated_dnn = PerTaskCalibratedClassifier(
        FrozenEstimator(dnn), method="sigmoid"
    ).fit(X_cal, y_cal)
    score("dnn_task_calibrated", calibrated_dnn)
    return rows, fitted["onehot"], data


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


def mean_over(frame, model, tasks, metric):
    sub = frame[(frame.model == model) & frame.task.isin(tasks)]
    per_seed = sub.groupby("seed")[metric].mean()
    return f"{100 * per_seed.mean():.2f} ± {100 * per_seed.std(ddof=1):.2f}"


def table(frame, models, seen, unseen, metric, label):
    body = summarize(frame, models, seen + unseen, metric)
    body.index = [t + (" (unseen)" if t in unseen else "") for t in body.index]
    body.loc["mean over seen tasks"] = [
        mean_over(frame, m, seen, metric) for m in models
    ]
    body.loc["mean over unseen tasks"] = [
        mean_over(frame, m, unseen, metric) for m in models
    ]
    return f"{label}\n\n{body.to_markdown()}\n"


LATENCY_HEADING = "## Serving latency"


def latency_section(serve: dict, args) -> str:
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
        f"{serve['module_batch_rows_per_s']:,.0f} rows/s |\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="fit the seed-0 model and redo only the latency section",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.latency_only:
        data, X_fit, _, y_fit, _ = split(0)
        model = AutoTaskClassifier(
            task_column="occupation", max_epochs=args.epochs, verbose=0, random_state=0
        ).fit(X_fit, y_fit)
        serve = latency(model, data)
        page = (RESULTS / "autotask.md").read_text()
        head = page.split(LATENCY_HEADING)[0]
        (RESULTS / "autotask.md").write_text(head + latency_section(serve, args))
        pd.DataFrame([serve]).to_csv(RESULTS / "autotask_latency.csv", index=False)
        print(latency_section(serve, args))
        return

    rows, first_model, first_data = [], None, None
    start = time.perf_counter()
    for seed in range(args.seeds):
        seed_rows, model, data = run_seed(seed, args.epochs, args.verbose)
        rows += seed_rows
        if first_model is None:
            first_model, first_data = model, data
    total = time.perf_counter() - start
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    frame.to_csv(RESULTS / "autotask.csv", index=False)

    serve = latency(first_model, first_data)
    unseen = first_data.unseen_tasks
    seen = [t for t in first_data.seen_tasks if t in set(frame.task)]
    out = [
        "# AutoTask on the Adult multi-scenario data\n",
        "Made by `python benchmarks/autotask_tables.py "
        f"--seeds {args.seeds} --epochs {args.epochs} --threads {args.threads}` "
        f"({total / 60:.0f} min; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} thread(s)). Per-task figures on the test split: "
        f"mean ± standard deviation over {args.seeds} seeds (each seed draws "
        "its own split and initialization), in percent. Tasks whose test "
        "rows have one class are left out. Per-row scores are in "
        "`autotask.csv`.\n",
    ]
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
    for metric, name in (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC")):
        out.append(
            table(
                frame,
                [f"autotask_{e}" for e in ENCODINGS],
                seen,
                unseen,
                metric,
                f"## Table 3 ({name}): task encodings",
            )
        )
    out.append(latency_section(serve, args))
    (RESULTS / "autotask.md").write_text("\n".join(out))
    pd.DataFrame([serve]).to_csv(RESULTS / "autotask_latency.csv", index=False)
    print("\n".join(out))


if __name__ == "__main__":
    main()
