"""Time and memory per training step of the gradient-level weighters
(plugins/gradient_weighters) and ``famo`` against ``uniform``, side by side in one run.

Each (model, weighter) pair trains in its own subprocess on the Adult
two-task data (income, never-married; one-hot features for SharedBottom, raw
fields for MMoE), one torch thread, ``--epochs`` epochs; the figures are the
median seconds per epoch, the process's peak resident memory minus its
resident memory just before ``fit`` (the training's extra memory), and the
held-out ROC AUC of both tasks. Runs are interleaved over ``--repeats``.

Run:  python benchmarks/gradient_weighters.py [--epochs 3] [--repeats 2]
Writes docs/results/gradient_weighters.md and .csv.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
WEIGHTERS = (
    "uniform",
    "famo",
    "pcgrad",
    "mgda",
    "mgda_params",
    "gradnorm",
    "cagrad",
    "upgrad",
    "imtl_g",
    "aligned_mtl",
    "dualproj",
)
MODELS = ("SharedBottomClassifier", "MMoEClassifier")


def child(model_name: str, weighter: str, epochs: int) -> dict:
    import numpy as np
    import torch
    from sklearn.model_selection import train_test_split

    import mtlestimators
    from mtlestimators import per_task_scores
    from mtlestimators.datasets import load_adult_multitask
    from mtlestimators.demo import adult_preprocessor

    torch.set_num_threads(1)
    data = load_adult_multitask()
    X_train, X_test, Y_train, Y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0
    )
    if model_name == "SharedBottomClassifier":
        prep = adult_preprocessor(data.categorical_features, data.numeric_features)
        X_train = prep.fit_transform(X_train).astype(np.float32)
        X_test = prep.transform(X_test).astype(np.float32)
    model = getattr(mtlestimators, model_name)(
        loss_weighter=weighter, max_epochs=epochs, verbose=0, random_state=0
    )
    # Import the weighter (a plugin pulls in torchjd, cvxpy...) before the
    # memory baseline: the figure is the training's, not the import's.
    mtlestimators.plugins.get_loss_weighter(weighter)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    model.fit(X_train, Y_train)
    total = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scores = per_task_scores(Y_test.to_numpy(), model.predict_proba(X_test))
    durations = [row["dur"] for row in model.history_]
    return {
        "model": model_name,
        "weighter": weighter,
        "s_per_epoch": float(np.median(durations)),
        "fit_s": total,
        "extra_memory_mb": (peak - before) / 1024,
        "auc_income": scores["task_0"]["roc_auc"],
        "auc_never_married": scores["task_1"]["roc_auc"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, weighter, epochs = args.child
        print(json.dumps(child(model, weighter, int(epochs))))
        return
    rows = []
    for repeat in range(args.repeats):
        for model in MODELS:
            for weighter in WEIGHTERS:
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        model,
                        weighter,
                        str(args.epochs),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                row = json.loads(out.stdout.strip().splitlines()[-1])
                row["repeat"] = repeat
                rows.append(row)
                print(row, flush=True)
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    frame.to_csv(RESULTS / "gradient_weighters.csv", index=False)
    summary = frame.groupby(["model", "weighter"], sort=False).median(numeric_only=True)
    for model in MODELS:
        base = summary.loc[(model, "uniform")]
        summary.loc[model, "time_vs_uniform"] = (
            summary.loc[model, "s_per_epoch"] / base["s_per_epoch"]
        ).to_numpy()
    summary = summary.drop(columns=["repeat", "fit_s"]).round(3)
    text = (
        "# Gradient-level weighters: cost per step and accuracy\n\n"
        f"Made by `python benchmarks/gradient_weighters.py --epochs {args.epochs} "
        f"--repeats {args.repeats}` on {date.today().isoformat()} "
        f"({platform.machine()}, one torch thread per "
        "run, runs interleaved). Adult two-task data (24,420 train / 8,141 "
        "test rows), batch size 256 (SharedBottom, one-hot features) and 128 "
        "(MMoE, raw fields); medians over the repeats. `extra_memory_mb` is "
        "the process's peak resident memory minus its resident memory before "
        "`fit` (the weighter's plugin already imported).\n\n"
        + summary.to_markdown()
        + "\n"
    )
    (RESULTS / "gradient_weighters.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
