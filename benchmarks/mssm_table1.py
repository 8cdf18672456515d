"""The MSSM paper's Table 1 and Table 2 protocol on public data.

Datasets: UCI Adult as two tasks (income > 50K, never married) and the MMoE
synthetic generator at task correlations 0.5, 0.9 and 1.0. Each dataset is
split once (75% train / 25% test, split seed 0); every model is fit with seeds
0..S-1 on the same split. Models: single-task (one per task), shared-bottom,
cross-stitch, MMoE, SNR-Aver, SNR-Trans, PLE, MSSM and its ablations
MSSM-a/-b/-Basic, and torch-rechub's MMOE and PLE (optional dependency
``torch-rechub``) trained on the same encoded inputs with matched sizes.
Every model trains with the same optimizer (Adam), learning rate, batch size
and number of epochs.

Reported per model: mean and standard deviation over seeds of each task's test
ROC AUC and of the summed test log loss (the paper's "Logloss": the total over
tasks), fit time and training throughput (training rows x epochs / fit time).
Writes ``docs/results/mssm.md`` and ``docs/results/mssm.csv`` (one row per fit,
rewritten after every fit so that an interrupted run keeps its results).

    python benchmarks/mssm_table1.py --seeds 10 --epochs 15
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from mtlestimators import (
    CrossStitchClassifier,
    MMoEClassifier,
    MSSMClassifier,
    PLEClassifier,
    SharedBottomClassifier,
    SNRClassifier,
)
from mtlestimators.datasets import load_adult_multitask, make_multitask_classification
from mtlestimators.demo import adult_preprocessor
from mtlestimators.tabular._fields import FieldEncoder, categorical_mask

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
EXPERTS, EXPERT_UNITS, TOWER_UNITS = 3, (32,), (32, 16)  # MSSM paper, 3.3.2


def load(name: str, n_synthetic: int):
    """(X_train, X_test, Y_train, Y_test, categorical, numeric) for a dataset."""
    if name == "adult":
        data = load_adult_multitask()
        X, Y = data.data, data.target.to_numpy()
        categorical, numeric = data.categorical_features, data.numeric_features
    else:
        p = float(name.split("=")[1])
        X, Y = make_multitask_classification(n_synthetic, 100, 2, p, random_state=0)
        X = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
        categorical, numeric = [], list(X.columns)
    X_train, X_test, Y_train, Y_test = train_test_split(
        X, Y, test_size=0.25, random_state=0
    )
    return X_train, X_test, Y_train, Y_test, categorical, numeric


def training(args, seed):
    return dict(
        lr=args.lr,
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        verbose=0,
        random_state=seed,
    )


def ours(args):
    """name -> (factory(seed), one model per task?, needs one-hot input?)"""
    bottom = dict(bottom_units=(96, 16), tower_units=TOWER_UNITS)
    sparse = dict(subnet_units=EXPERT_UNITS, tower_units=TOWER_UNITS)
    return {
        "Single-Task": (
            lambda s: SharedBottomClassifier(**bottom, **training(args, s)),
            True,
            True,
        ),
        "Shared-Bottom": (
            lambda s: SharedBottomClassifier(**bottom, **training(args, s)),
            False,
            True,
        ),
        "Cross-Stitch": (
            lambda s: CrossStitchClassifier(
                hidden_units=EXPERT_UNITS, tower_units=TOWER_UNITS, **training(args, s)
            ),
            False,
            False,
        ),
        "MMoE": (
            lambda s: MMoEClassifier(
                n_experts=EXPERTS,
                expert_units=EXPERT_UNITS,
                tower_units=TOWER_UNITS,
                **training(args, s),
            ),
            False,
            False,
        ),
        "SNR-Aver": (
            lambda s: SNRClassifier(
                routing="average", n_subnetworks=EXPERTS, **sparse, **training(args, s)
            ),
            False,
            False,
        ),
        "SNR-Trans": (
            lambda s: SNRClassifier(
                routing="transform",
                n_subnetworks=EXPERTS,
                **sparse,
                **training(args, s),
            ),
            False,
            False,
        ),
        "PLE": (
            lambda s: PLEClassifier(
                n_levels=2,
                n_specific_experts=1,
                n_shared_experts=1,
                expert_units=EXPERT_UNITS,
                tower_units=TOWER_UNITS,
                **training(args, s),
            ),
            False,
            False,
        ),
        "MSSM": (lambda s: MSSMClassifier(**sparse, **training(args, s)), False, False),
        "MSSM-a": (
            lambda s: MSSMClassifier(field_masks=False, **sparse, **training(args, s)),
            False,
            False,
        ),
        "MSSM-b": (
            lambda s: MSSMClassifier(cell_sharing=False, **sparse, **training(args, s)),
            False,
            False,
        ),
        "MSSM-Basic": (
            lambda s: MSSMClassifier(
                field_masks=False, cell_sharing=False, **sparse, **training(args, s)
            ),
            False,
            False,
        ),
    }


def fit_ours(factory, per_task, one_hot, data, seed):
    X_train, X_test, Y_train, Y_test, categorical, numeric = data
    proba, start = [], time.perf_counter()
    columns = range(Y_train.shape[1]) if per_task else [None]
    extra = {}
    for k in columns:
        model = factory(seed)
        if one_hot:
            model = make_pipeline(adult_preprocessor(categorical, numeric), model)
        target = Y_train if k is None else Y_train[:, k]
        model.fit(X_train, target)
        p = model.predict_proba(X_test)
        proba.append(p if k is None else p[:, 1:])
        final = model[-1] if one_hot else model
        if hasattr(final, "connection_sparsity_"):
            extra["connection_sparsity_"] = final.connection_sparsity_
        if hasattr(final, "field_masks_"):
            extra["mean_field_mask"] = float(np.mean(final.field_masks_))
            extra["zero_field_masks"] = float(np.mean(final.field_masks_ == 0))
    return np.hstack(proba), time.perf_counter() - start, extra


def rechub_models(args):
    try:
        from torch_rechub.basic.features import DenseFeature, SparseFeature
        from torch_rechub.models.multi_task import MMOE, PLE
    except ImportError:
        return {}

    def features(encoder):
        sparse = [
            SparseFeature(f"c{k}", vocab_size=c, embed_dim=8)
            for k, c in enumerate(encoder.cardinalities)
        ]
        dense = [
            DenseFeature(f"n{k}") for k in range(int((~encoder.categorical).sum()))
        ]
        return sparse + dense

    towers = [{"dims": list(TOWER_UNITS)}] * 2
    experts = {"dims": list(EXPERT_UNITS)}
    return {
        "torch-rechub MMOE": lambda enc: MMOE(
            features(enc), ["classification"] * 2, EXPERTS, experts, towers
        ),
        "torch-rechub PLE": lambda enc: PLE(
            features(enc), ["classification"] * 2, 2, 1, 1, experts, towers
        ),
    }


def fit_rechub(build, data, seed, args):
    """Train a torch-rechub module with a plain loop on our encoded inputs."""
    X_train, X_test, Y_train, Y_test, _, _ = data
    mask = categorical_mask(
        "from_dtype", X_train, X_train.shape[1], list(X_train.columns)
    )
    encoder = FieldEncoder.fit(
        X_train.to_numpy(dtype=object), mask, list(X_train.columns)
    )

    def tensors(X):
        parts = encoder.transform(X.to_numpy(dtype=object))
        out = {
            f"c{k}": torch.as_tensor(col)
            for k, col in enumerate(parts["categorical"].T)
        }
        out.update(
            {f"n{k}": torch.as_tensor(col) for k, col in enumerate(parts["numeric"].T)}
        )
        return out

    train, test = tensors(X_train), tensors(X_test)
    y = torch.as_tensor(Y_train, dtype=torch.float32)
    torch.manual_seed(seed)
    model = build(encoder)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    n = len(y)
    start = time.perf_counter()
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(n)
        for lo in range(0, n, args.batch_size):
            index = order[lo : lo + args.batch_size]
            batch = {k: v[index] for k, v in train.items()}
            optimizer.zero_grad()
            loss = F.binary_cross_entropy(model(batch), y[index])
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        proba = model(test).numpy()
    return proba, seconds, {}


def score(Y_test, proba):
    aucs = [roc_auc_score(Y_test[:, k], proba[:, k]) for k in range(Y_test.shape[1])]
    clipped = np.clip(proba, 1e-7, 1 - 1e-7)
    total = sum(
        log_loss(Y_test[:, k], clipped[:, k], labels=[0, 1])
        for k in range(Y_test.shape[1])
    )
    return aucs, total


def summarize(rows: list[dict], args, machine: str) -> str:
    frame = pd.DataFrame(rows)
    lines = [
        "# MSSM Table 1 and Table 2 on public data",
        "",
        f"Command: `python benchmarks/mssm_table1.py --seeds {args.seeds} --epochs "
        f"{args.epochs} --lr {args.lr} --batch-size {args.batch_size} --datasets "
        f"{' '.join(args.datasets)} --synthetic-samples {args.synthetic_samples}`",
        "",
        f"Machine: {machine}. Every model: Adam, lr {args.lr}, batch "
        f"{args.batch_size}, {args.epochs} epochs, seeds 0..{args.seeds - 1} on "
        "one fixed 75/25 split. "
        "Mean +- standard deviation over seeds. AUC1/AUC2: test ROC AUC of task 1/2; "
        "Logloss: summed test log loss of the two tasks. rows/s: training rows x "
        "epochs / fit time (single-task: both models' time).",
        "",
    ]
    for dataset, part in frame.groupby("dataset", sort=False):
        lines += [
            f"## {dataset}",
            "",
            "| model | AUC1 | AUC2 | Logloss | fit (s) | rows/s | gate sparsity |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for model, runs in part.groupby("model", sort=False):

            def ms(col, runs=runs):
                return f"{runs[col].mean():.4f} +- {runs[col].std(ddof=0):.4f}"

            sparsity = (
                f"{runs['connection_sparsity_'].mean():.2f}"
                if "connection_sparsity_" in runs
                and runs["connection_sparsity_"].notna().any()
                else ""
            )
            lines.append(
                f"| {model} | {ms('auc1')} | {ms('auc2')} | {ms('logloss')} | "
                f"{runs['fit_s'].mean():.1f} | {runs['rows_per_s'].mean():.0f} | "
                f"{sparsity} |"
            )
        lines.append("")
        ple = part[part.model == "torch-rechub PLE"]["rows_per_s"]
        mssm = part[part.model == "MSSM"]["rows_per_s"]
        if len(ple) and len(mssm):
            lines += [
                f"MSSM / torch-rechub PLE training throughput: "
                f"{mssm.mean() / ple.mean():.2f}",
                "",
            ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--synthetic-samples", type=int, default=10_000)
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=["adult", "synthetic p=0.5", "synthetic p=0.9", "synthetic p=1.0"],
    )
    parser.add_argument("--models", nargs="*", default=None, help="subset of models")
    parser.add_argument("--out", default=str(RESULTS / "mssm"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    machine = (
        f"{platform.machine()}, {args.threads} torch threads, torch "
        f"{torch.__version__}, Python {platform.python_version()}"
    )
    rows: list[dict] = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for dataset in args.datasets:
        data = load(dataset, args.synthetic_samples)
        n_train = len(data[0])
        models = {name: ("ours", spec) for name, spec in ours(args).items()}
        models.update({name: ("rechub", b) for name, b in rechub_models(args).items()})
        if args.models:
            models = {k: v for k, v in models.items() if k in args.models}
        for seed in range(args.seeds):
            for name, (kind, spec) in models.items():
                if kind == "ours":
                    proba, seconds, extra = fit_ours(*spec, data, seed)
                else:
                    proba, seconds, extra = fit_rechub(spec, data, seed, args)
                aucs, total = score(np.asarray(data[3]), proba)
                row = {
                    "dataset": dataset,
                    "model": name,
                    "seed": seed,
                    "auc1": aucs[0],
                    "auc2": aucs[1],
                    "logloss": total,
                    "fit_s": seconds,
                    "rows_per_s": n_train * args.epochs / seconds,
                    **extra,
                }
                rows.append(row)
                print(
                    f"{dataset:<16} {name:<18} seed {seed}: AUC {aucs[0]:.4f} / "
                    f"{aucs[1]:.4f}, logloss {total:.4f}, {seconds:.1f} s",
                    flush=True,
                )
                pd.DataFrame(rows).to_csv(out.with_suffix(".csv"), index=False)
                out.with_suffix(".md").write_text(summarize(rows, args, machine) + "\n")
    print(summarize(rows, args, machine))


if __name__ == "__main__":
    main()
