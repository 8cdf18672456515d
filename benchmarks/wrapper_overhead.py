"""Training throughput of SharedBottomClassifier against a bare torch loop.

Three ways to train the same SharedBottomModule on the same preprocessed Adult
data (two tasks), same batch size, epochs, optimizer and loss, in one run:

- ``bare``: a hand-written torch loop over tensors (randperm + slicing);
- ``estimator``: ``SharedBottomClassifier.fit`` (skorch with this library's
  tensor-resident batches);
- ``skorch_default``: the same skorch net with skorch's default data path
  (``skorch.dataset.Dataset`` + ``torch.utils.data.DataLoader``).

Runs are interleaved and repeated; the median rows/s of each is reported with
its ratio to ``bare``. Writes ``docs/results/wrapper_overhead.md`` and ``.csv``.

    python benchmarks/wrapper_overhead.py [--repeats 5] [--epochs 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import csv
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from skorch import NeuralNet
from torch.utils.data import DataLoader

from mtlestimators import SharedBottomClassifier
from mtlestimators._core.net import MultiTaskLoss, MultiTaskNet
from mtlestimators.datasets import load_adult_multitask
from mtlestimators.demo import adult_preprocessor
from mtlestimators.tabular._shared_bottom import SharedBottomModule

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def adult_tensors():
    data = load_adult_multitask()
    X_train, _, Y_train, _ = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0
    )
    prep = adult_preprocessor(data.categorical_features, data.numeric_features)
    X = prep.fit_transform(X_train).astype(np.float32)
    return X, Y_train.to_numpy(dtype=np.float32)


def module_params(n_features):
    return dict(n_features=n_features, output_dims=[1, 1])


def bare_loop(X, Y, epochs, batch_size, lr, seed):
    torch.manual_seed(seed)
    module = SharedBottomModule(**module_params(X.shape[1]))
    criterion = MultiTaskLoss(["binary", "binary"])
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    Xt, Yt = torch.from_numpy(X.copy()), torch.from_numpy(Y.copy())
    module.train()
    for _ in range(epochs):
        order = torch.randperm(len(Xt))
        for start in range(0, len(Xt), batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = criterion(module(Xt[index]), Yt[index]).sum()
            loss.backward()
            optimizer.step()


def estimator_fit(X, Y, epochs, batch_size, lr, seed):
    SharedBottomClassifier(
        max_epochs=epochs, batch_size=batch_size, lr=lr, verbose=0, random_state=seed
    ).fit(X, Y)


class _DefaultDataNet(MultiTaskNet):
    get_dataset = NeuralNet.get_dataset


def skorch_default(X, Y, epochs, batch_size, lr, seed):
    torch.manual_seed(seed)
    net = _DefaultDataNet(
        SharedBottomModule,
        task_kinds=["binary", "binary"],
        iterator_train=DataLoader,
        iterator_valid=DataLoader,
        optimizer=torch.optim.Adam,
        lr=lr,
        max_epochs=epochs,
        batch_size=batch_size,
        verbose=0,
        **{f"module__{k}": v for k, v in module_params(X.shape[1]).items()},
    )
    net.fit(X, Y)


RUNNERS = {
    "bare": bare_loop,
    "estimator": estimator_fit,
    "skorch_default": skorch_default,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X, Y = adult_tensors()
    rows = len(X) * args.epochs
    timings = {name: [] for name in RUNNERS}
    cpu = {name: [] for name in RUNNERS}
    for run in RUNNERS.values():  # warm-up
        run(X[:2048], Y[:2048], 1, args.batch_size, 1e-3, 0)
    for repeat in range(args.repeats):
        for name, run in RUNNERS.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run(X, Y, args.epochs, args.batch_size, 1e-3, repeat)
            timings[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    bare = statistics.median(timings["bare"])
    bare_cpu = statistics.median(cpu["bare"])
    table = []
    for name, values in timings.items():
        median = statistics.median(values)
        median_cpu = statistics.median(cpu[name])
        table.append(
            {
                "path": name,
                "median_s": round(median, 3),
                "min_s": round(min(values), 3),
                "max_s": round(max(values), 3),
                "rows_per_s": round(rows / median),
                "time_vs_bare": round(median / bare, 3),
                "cpu_s": round(median_cpu, 3),
                "cpu_vs_bare": round(median_cpu / bare_cpu, 3),
            }
        )
    machine = (
        f"{platform.processor() or platform.machine()}, {args.threads} torch threads, "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )
    header = (
        f"Adult, {len(X)} rows x {X.shape[1]} features, 2 tasks, SharedBottomModule "
        f"(128, 64) + towers (32,), batch {args.batch_size}, {args.epochs} epochs, "
        f"Adam; median of {args.repeats} interleaved repeats. Machine: {machine}."
    )
    lines = [
        "# Wrapper overhead: SharedBottomClassifier vs a bare torch loop",
        "",
        f"Command: `python benchmarks/wrapper_overhead.py --repeats {args.repeats} "
        f"--epochs {args.epochs} --threads {args.threads}`",
        "",
        header,
        "",
        "Wall-clock time on this VM varies by about +-25% between runs of the same "
        "loop, so the median is reported with its range, next to process CPU time, "
        "which such noise affects less.",
        "",
        "| path | median fit time (s) [min, max] | training rows/s | time / bare "
        "loop | CPU time (s) | CPU time / bare loop |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['path']} | {r['median_s']} [{r['min_s']}, {r['max_s']}] | "
        f"{r['rows_per_s']} | {r['time_vs_bare']} | {r['cpu_s']} | {r['cpu_vs_bare']} |"
        for r in table
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "wrapper_overhead.md").write_text(text)
    with open(RESULTS / "wrapper_overhead.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)


if __name__ == "__main__":
    main()
