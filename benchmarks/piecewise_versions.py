"""Piecewise-linear field encodings: rtdl_num_embeddings' version "A" (the
bins alone, the library's encoding before) against version "B" (a linear term
plus the bins, which start at zero; the default now) and the linear encoding.

MSSM and MMoE at their defaults otherwise, on the suite's split
(benchmarks/tabular_suite.py's loaders and ``split``), seeds 0 and 1; prints
the mean over tasks of test ROC AUC per fit. Version "A" is chosen by
replacing the package's class for the fit (the estimators build version "B").

    python benchmarks/piecewise_versions.py yeast,wa_churn,cps1988
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import rtdl_num_embeddings as rtdl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tabular_suite as suite  # noqa: E402  (the sibling script, not a package)

from mtlestimators import MMoEClassifier, MSSMClassifier  # noqa: E402

Package = rtdl.PiecewiseLinearEmbeddings


class VersionA(Package):
    def __init__(self, bins, d, activation=False, version=None):
        super().__init__(bins, d, activation=activation, version="A")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(1)
    datasets = (argv[0] if argv else "yeast,wa_churn,cps1988").split(",")
    for name in datasets:
        X, Y, _ = suite.load(name, None)
        for seed in (0, 1):
            X_train, X_test, Y_train, Y_test = suite.split(X, Y, seed)
            for cls in (MSSMClassifier, MMoEClassifier):
                for arm in ("A", "B", "linear"):
                    rtdl.PiecewiseLinearEmbeddings = VersionA if arm == "A" else Package
                    params = {"numeric_embedding": "linear"} if arm == "linear" else {}
                    # The recorded run had a constant learning rate.
                    params["lr_schedule"] = "constant"
                    start = time.perf_counter()
                    try:
                        proba, extra = suite.fit_library(
                            cls, X_train, Y_train, X_test, seed, params
                        )
                    finally:
                        rtdl.PiecewiseLinearEmbeddings = Package
                    aucs = [auc for _, auc, *_ in suite.score(Y_test, proba)]
                    print(
                        f"{name} {cls.__name__[:4]} seed {seed} {arm:<7} mean AUC "
                        f"{np.mean(aucs):.4f} epochs {extra['epochs']:.0f} "
                        f"{time.perf_counter() - start:.0f}s",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
