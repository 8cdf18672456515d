"""The MSSM paper's Table 1 and Table 2 protocol on public data.

Datasets: UCI Adult as two tasks (income > 50K, never married) and the MMoE
synthetic generator at task correlations 0.5, 0.9 and 1.0. Each dataset is
split once (75% train / 25% test, split seed 0); every model is fit with seeds
0..S-1 on the same split. Models: single-task (one per task), shared-bottom,
cross-stitch, MMoE, SNR-Aver, SNR-Trans, PLE, MSSM and its ablations
MSSM-a/-b/-Basic, and torch-rechub's MMOE and PLE (optional dependency
``torch-rechub``) trained on the same encoded inputs with matched sizes.
Every model trains with the same optimizer (Adam), learning rate, batch size
and epoch budget. Without ``--lr``, ``--batch-size`` and ``--epochs`` every
model runs at the library's defaults (the family's recipe: lr 3e-3, batch 128,
at most 100 epochs ended by early stopping); ``--no-early-stopping`` trains
every epoch of the budget (the paper's fixed-schedule reading, e.g. its lr 1e-4
and batch 256 for long enough that the gates settle). ``MSSM (sum L0)`` is the
paper's literal L0 term, the *sum* of the expected open cells times lambda_2
(the library's default is the mean; docs/results/mssm_sparsity.md), without the
keep-open floor; its per-epoch ``connection_sparsity`` goes to
``<out>_gates.csv`` with the other gated models'.

Reported per model: mean and standard deviation over seeds of each task's test
ROC AUC and of the summed test log loss (the paper's "Logloss": the total over
tasks), fit time and training throughput (training rows x epochs / fit time).
Writes ``docs/results/mssm.md`` and ``docs/results/mssm.csv`` (one row per fit,
rewritten after every fit so that an interrupted run keeps its results).

    python benchmarks/mssm_table1.py --seeds 5
    python benchmarks/mssm_table1.py --seeds 3 --lr 1e-4 --batch-size 256 \
        --epochs 80 --no-early-stopping --models MSSM "MSSM (sum L0)" MMoE
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
from skorch.callbacks import Callback

from mtlestimators import (
    CrossStitchClassifier,
    MMoEClassifier,
    MSSMClassifier,
    PLEClassifier,
    SharedBottomClassifier,
    SingleTaskMLPClassifier,
    SNRClassifier,
)
from mtlestimators._core.net import bare_module
from mtlestimators.datasets import load_adult_multitask, make_multitask_classification
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
    """The shared training settings: the library's defaults where not given."""
    given = dict(lr=args.lr, batch_size=args.batch_size, max_epochs=args.epochs)
    params = {k: v for k, v in given.items() if v is not None}
    if args.no_early_stopping:
        params["early_stopping"] = False
    return dict(params, verbose=0, random_state=seed)


class GateValues(Callback):
    """Records ``mean_gate``, the mean eval-mode value of the CSSM gate cells
    (1 open, 0 closed), every epoch: it shows the gates moving before any
    cell reaches exactly 0."""

    def on_epoch_end(self, net, **kwargs):
        cells = bare_module(net.module_).eval_cell_values()
        net.history.record(
            "mean_gate", float("nan") if cells is None else float(cells.mean())
        )


def n_cells(n_tasks: int) -> int:
    """CSSM gate cells at this script's sizes: every task's connections to its
    own sub-network and the shared one, one gate per unit of width."""
    return n_tasks * 2 * EXPERT_UNITS[-1]


def ours(args, n_tasks):
    """name -> (factory(seed), one model per task?)"""
    bottom = dict(bottom_units=(96, 16), tower_units=TOWER_UNITS)
    sparse = dict(subnet_units=EXPERT_UNITS, tower_units=TOWER_UNITS)
    # The paper's lambda_2 = 1e-2 on the summed expected L0 norm: the mean the
    # library uses times the number of cells.
    sum_l0 = dict(l0_penalty=1e-2 * n_cells(n_tasks), keep_open=False)

    def mssm(seed, **params):
        return MSSMClassifier(
            **sparse, **params, **training(args, seed), callbacks=[GateValues()]
        )

    return {
        "Single-Task": (
            # The paper's single-task network: the two shared layers (96, 16)
            # then the task layers (32, 16), one network per task.
            lambda s: SingleTaskMLPClassifier(
                hidden_units=(96, 16) + TOWER_UNITS, **training(args, s)
            ),
            True,
        ),
        "Shared-Bottom": (
            lambda s: SharedBottomClassifier(**bottom, **training(args, s)),
            False,
        ),
        "Cross-Stitch": (
            lambda s: CrossStitchClassifier(
                hidden_units=EXPERT_UNITS, tower_units=TOWER_UNITS, **training(args, s)
            ),
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
        ),
        "SNR-Aver": (
            lambda s: SNRClassifier(
                routing="average", n_subnetworks=EXPERTS, **sparse, **training(args, s)
            ),
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
        ),
        "MSSM": (lambda s: mssm(s), False),
        "MSSM (sum L0)": (lambda s: mssm(s, **sum_l0), False),
        "MSSM-a": (lambda s: mssm(s, field_masks=False), False),
        "MSSM-b": (lambda s: mssm(s, cell_sharing=False), False),
        "MSSM-Basic": (lambda s: mssm(s, field_masks=False, cell_sharing=False), False),
    }


def fit_ours(factory, per_task, data, seed):
    """Fit one model (or one per task); (proba, seconds, extras, trajectory)."""
    X_train, X_test, Y_train, Y_test, categorical, numeric = data
    proba, start = [], time.perf_counter()
    columns = range(Y_train.shape[1]) if per_task else [None]
    extra, epochs, trajectory = {}, [], []
    for k in columns:
        model = factory(seed)
        target = Y_train if k is None else Y_train[:, k]
        model.fit(X_train, target)
        p = model.predict_proba(X_test)
        proba.append(p if k is None else p[:, 1:])
        epochs.append(len(model.history_))
        if hasattr(model, "connection_sparsity_"):
            extra["connection_sparsity_"] = model.connection_sparsity_
            gates = [epoch.get("mean_gate", float("nan")) for epoch in model.history_]
            trajectory = list(
                zip(model.history_[:, "connection_sparsity"], gates, strict=True)
            )
            cells = bare_module(model.net_.module_).eval_cell_values()
            if cells is not None:
                extra["mean_gate"] = float(cells.mean())
        if hasattr(model, "field_masks_"):
            extra["mean_field_mask"] = float(np.mean(model.field_masks_))
            extra["zero_field_masks"] = float(np.mean(model.field_masks_ == 0))
    # Epochs run (per task for the single-task arm, joined by "/").
    extra["epochs"] = "/".join(str(e) for e in epochs)
    extra["epochs_total"] = sum(epochs)
    return np.hstack(proba), time.perf_counter() - start, extra, trajectory


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
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr or 3e-3)
    n, batch_size = len(y), args.batch_size or 128
    epochs = args.epochs or 100  # the library's max_epochs
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n)
        for lo in range(0, n, batch_size):
            index = order[lo : lo + batch_size]
            batch = {k: v[index] for k, v in train.items()}
            optimizer.zero_grad()
            loss = F.binary_cross_entropy(model(batch), y[index])
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        proba = model(test).numpy()
    return proba, seconds, {"epochs": str(epochs), "epochs_total": epochs}, []


def score(Y_test, proba):
    aucs = [roc_auc_score(Y_test[:, k], proba[:, k]) for k in range(Y_test.shape[1])]
    clipped = np.clip(proba, 1e-7, 1 - 1e-7)
    total = sum(
        log_loss(Y_test[:, k], clipped[:, k], labels=[0, 1])
        for k in range(Y_test.shape[1])
    )
    return aucs, total


def command(args) -> str:
    parts = [f"--seeds {args.seeds}"]
    for flag, value in (
        ("--lr", args.lr),
        ("--batch-size", args.batch_size),
        ("--epochs", args.epochs),
    ):
        if value is not None:
            parts.append(f"{flag} {value:g}")
    if args.no_early_stopping:
        parts.append("--no-early-stopping")
    parts.append(
        "--datasets " + " ".join(f'"{d}"' if " " in d else d for d in args.datasets)
    )
    if any(d.startswith("synthetic") for d in args.datasets):
        parts.append(f"--synthetic-samples {args.synthetic_samples}")
    if args.models:
        parts.append(
            "--models " + " ".join(f'"{m}"' if " " in m else m for m in args.models)
        )
    return "python benchmarks/mssm_table1.py " + " ".join(parts)


def settings(args) -> str:
    lr = args.lr if args.lr is not None else "3e-3 (default)"
    batch = args.batch_size if args.batch_size is not None else "128 (default)"
    budget = args.epochs if args.epochs is not None else "100 (default)"
    stop = (
        "every epoch of the budget (early stopping off)"
        if args.no_early_stopping
        else "early stopping at its defaults (10% of the training rows held out, "
        "patience 10, best epoch restored; the learning rate x0.3 once the "
        "held-out loss has not improved for 3 epochs, lr_schedule='plateau', "
        "in versions that have it)"
    )
    return f"Adam, lr {lr}, batch {batch}, at most {budget} epochs, {stop}"


def settling(trajectories: list[dict]) -> list[str]:
    """Per gated model: the mean over seeds, at every tenth epoch, of the share
    of closed cells and (where recorded) of the mean gate value, and how far
    each moved over the last 10 epochs (the largest move of any seed)."""
    if not trajectories:
        return []
    frame = pd.DataFrame(trajectories)
    if "mean_gate" not in frame:
        frame["mean_gate"] = float("nan")
    lines = [
        "Gate cells over the epochs, mean over the seeds still training at that "
        "epoch: closed share (connection_sparsity) and mean eval-mode gate value "
        "(1 open, 0 closed; MSSM rows only), at epochs 1, 10, 20, ... (1, 50, "
        "100, ... in fits longer than 150 epochs) and the last. 'last 10 "
        "epochs': the largest change of any seed over its last 10 epochs, closed "
        "share / mean gate value (settled when both are near 0).",
        "",
        "| dataset | model | closed share | mean gate value | last 10 epochs |",
        "| --- | --- | --- | --- | --- |",
    ]

    longest = int(frame["epoch"].max())
    step = 10 if longest <= 150 else 50

    def path(series):
        # An epoch that early stopping ended has no mean_gate: the stop comes
        # before the later callbacks run.
        series = series.dropna()
        if series.empty:
            return ""
        marks = [e for e in series.index if e == 1 or e % step == 0]
        if series.index[-1] not in marks:
            marks.append(series.index[-1])
        return ", ".join(f"{series[e]:.2f}" for e in marks)

    for (dataset, model), part in frame.groupby(["dataset", "model"], sort=False):
        by_epoch = part.groupby("epoch")[["connection_sparsity", "mean_gate"]].mean()
        moves = {"connection_sparsity": [], "mean_gate": []}
        for _, runs in part.groupby("seed"):
            runs = runs.sort_values("epoch")
            for column, found in moves.items():
                values = runs[column].dropna().to_numpy()
                if len(values) > 10:
                    found.append(abs(values[-1] - values[-11]))
        move = " / ".join(
            f"{max(found):.3f}" if found else "-" for found in moves.values()
        )
        lines.append(
            f"| {dataset} | {model} | {path(by_epoch['connection_sparsity'])} | "
            f"{path(by_epoch['mean_gate'])} | {move} |"
        )
    return lines + [""]


def summarize(rows: list[dict], args, machine: str, trajectories=()) -> str:
    frame = pd.DataFrame(rows)
    lines = [
        "# MSSM Table 1 and Table 2 on public data",
        "",
        f"Command: `{command(args)}`",
        "",
        f"Machine: {machine}. Every model: {settings(args)}; seeds "
        f"0..{args.seeds - 1} on one fixed 75/25 split. "
        "Mean +- standard deviation over seeds. AUC1/AUC2: test ROC AUC of task 1/2; "
        "Logloss: summed test log loss of the two tasks. epochs: epochs run, mean "
        "over seeds (single-task: per task). rows/s: training rows x epochs run / "
        "fit time (single-task: both models' time). gate sparsity: share of the "
        "CSSM/SNR gate cells closed after fit.",
        "",
    ]
    for dataset, part in frame.groupby("dataset", sort=False):
        lines += [
            f"## {dataset}",
            "",
            "| model | AUC1 | AUC2 | Logloss | epochs | fit (s) | rows/s "
            "| gate sparsity |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
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
            per_task = runs["epochs"].astype(str).str.split("/", expand=True)
            epochs = "/".join(
                f"{pd.to_numeric(per_task[c]).mean():.0f}" for c in per_task.columns
            )
            lines.append(
                f"| {model} | {ms('auc1')} | {ms('auc2')} | {ms('logloss')} | "
                f"{epochs} | {runs['fit_s'].mean():.1f} | "
                f"{runs['rows_per_s'].mean():.0f} | {sparsity} |"
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
    lines += settling(list(trajectories))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=None, help="max_epochs")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument(
        "--no-early-stopping",
        action="store_true",
        help="train every epoch of --epochs (torch-rechub's models only run then)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--synthetic-samples", type=int, default=10_000)
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=["adult", "synthetic p=0.5", "synthetic p=0.9", "synthetic p=1.0"],
    )
    parser.add_argument("--models", nargs="*", default=None, help="subset of models")
    parser.add_argument("--out", default=str(RESULTS / "mssm"))
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite <out>.md from <out>.csv and <out>_gates.csv (same arguments)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    machine = (
        f"{platform.machine()}, {args.threads} torch threads, torch "
        f"{torch.__version__}, Python {platform.python_version()}"
    )
    rows: list[dict] = []
    trajectories: list[dict] = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        gates = out.parent / f"{out.name}_gates.csv"
        rows = pd.read_csv(out.with_suffix(".csv")).to_dict("records")
        if gates.exists():
            trajectories = pd.read_csv(gates).to_dict("records")
        out.with_suffix(".md").write_text(
            summarize(rows, args, machine, trajectories) + "\n"
        )
        return
    for dataset in args.datasets:
        data = load(dataset, args.synthetic_samples)
        n_train = len(data[0])
        n_tasks = np.asarray(data[2]).shape[1]
        models = {name: ("ours", spec) for name, spec in ours(args, n_tasks).items()}
        if args.no_early_stopping:
            # A plain loop without early stopping: comparable only at a fixed
            # epoch budget.
            models.update(
                {name: ("rechub", b) for name, b in rechub_models(args).items()}
            )
        if args.models:
            models = {k: v for k, v in models.items() if k in args.models}
        for seed in range(args.seeds):
            for name, (kind, spec) in models.items():
                if kind == "ours":
                    proba, seconds, extra, trajectory = fit_ours(*spec, data, seed)
                else:
                    proba, seconds, extra, trajectory = fit_rechub(
                        spec, data, seed, args
                    )
                trajectories += [
                    {
                        "dataset": dataset,
                        "model": name,
                        "seed": seed,
                        "epoch": epoch,
                        "connection_sparsity": value,
                        "mean_gate": gate,
                    }
                    for epoch, (value, gate) in enumerate(trajectory, 1)
                ]
                aucs, total = score(np.asarray(data[3]), proba)
                row = {
                    "dataset": dataset,
                    "model": name,
                    "seed": seed,
                    "auc1": aucs[0],
                    "auc2": aucs[1],
                    "logloss": total,
                    "fit_s": seconds,
                    "rows_per_s": n_train * extra["epochs_total"] / seconds,
                    **extra,
                }
                rows.append(row)
                print(
                    f"{dataset:<16} {name:<18} seed {seed}: AUC {aucs[0]:.4f} / "
                    f"{aucs[1]:.4f}, logloss {total:.4f}, {extra['epochs']} epochs, "
                    f"{seconds:.1f} s",
                    flush=True,
                )
                pd.DataFrame(rows).to_csv(out.with_suffix(".csv"), index=False)
                if trajectories:
                    pd.DataFrame(trajectories).to_csv(
                        out.parent / f"{out.name}_gates.csv", index=False
                    )
                out.with_suffix(".md").write_text(
                    summarize(rows, args, machine, trajectories) + "\n"
                )
    print(summarize(rows, args, machine, trajectories))


if __name__ == "__main__":
    main()
