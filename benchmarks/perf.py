"""Performance suite: every estimator against a bare torch loop on its own module.

For each estimator (the six tabular multi-task models, the two scenario models
and GalleryEmbedder), in one run:

- training: ``fit`` against a hand-written torch loop over the same module,
  initial weights, batches, optimizer, loss and loss weighter (the inputs the
  estimator builds, as tensors), and the same loop on ``torch.compile``'d
  module; then ``fit`` at 4x the rows and at 8 instead of 2 tasks, for how
  the cost grows;
- peak memory: how far ``fit`` (and the bare loop) raises the peak resident
  set of a fresh subprocess per (estimator, rows, tasks), from the kernel's
  reset peak-RSS mark (Linux ``/proc/self/clear_refs``, ``VmHWM``);
- inference: ``predict_proba`` (``transform`` for GalleryEmbedder) on one row
  against the module's forward on the same row (median and 99th percentile),
  and on a batch (rows/s), eager and compiled;
- GalleryEmbedder's images/s against the bare torchvision backbone (its
  convolutional trunk, no pooling or heads) on the same image tensors.

Timed variants are interleaved (each repeat runs every variant once, in a
rotated order), so machine noise hits them alike; figures are medians with
their range over repeats, and ratios are taken per repeat before the median.

    python benchmarks/perf.py [--quick] [--threads 1] [--repeats 3] [--epochs 2]

Writes ``docs/results/performance.csv`` (``performance_quick.csv`` with
``--quick``) and prints the tables.
"""

from __future__ import annotations

import argparse
import copy
import csv
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone

from mtlestimators import (
    AutoTaskClassifier,
    CrossStitchClassifier,
    GalleryEmbedder,
    MMoEClassifier,
    MSSMClassifier,
    MultiTaskDNNClassifier,
    PLEClassifier,
    SharedBottomClassifier,
    SNRClassifier,
)
from mtlestimators._core.net import MultiTaskNet
from mtlestimators.datasets import make_digit_galleries, make_multitask_classification

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"

N_FEATURES = 16  # columns of the tabular data; the first N_CATEGORICAL are codes
N_CATEGORICAL = 4
GALLERY_BACKBONE, GALLERY_IMAGE_SIZE = "resnet18", 32

# --------------------------------------------------------------------- data


def tabular_data(n, n_tasks, seed=0):
    """(X, Y): MMoE's synthetic tasks; the first columns binned to 8 codes, so
    the field models embed some categorical fields."""
    X, Y = make_multitask_classification(n, N_FEATURES, n_tasks, 0.5, random_state=seed)
    for j in range(N_CATEGORICAL):
        X[:, j] = np.digitize(X[:, j], np.quantile(X[:, j], np.linspace(0, 1, 9)[1:-1]))
    return X, Y.astype(float)


def scenario_data(n, n_tasks, seed=0):
    """(X, y): the same generator, one task (scenario) per row, named in the
    last column of X; y is that task's label."""
    X, Y = make_multitask_classification(n, N_FEATURES, n_tasks, 0.5, random_state=seed)
    task = np.random.RandomState(seed).randint(n_tasks, size=n)
    names = np.array([f"t{k}" for k in range(n_tasks)], dtype=object)
    return np.column_stack([X.astype(object), names[task]]), Y[np.arange(n), task]


def gallery_data(n, n_tasks=None, seed=0):
    """(galleries, y): n MNIST digit galleries of 5-20 images, four tasks."""
    data = make_digit_galleries(n, random_state=seed)
    return data.galleries, data.target


@dataclass
class Case:
    name: str
    estimator: object  # unfitted, max_epochs set at run time
    data: object  # (n, n_tasks, seed) -> (X, y)
    kind: str  # "tabular", "scenario" or "gallery"


def cases():
    quiet = {"verbose": 0, "random_state": 0}
    fields = {"categorical_features": list(range(N_CATEGORICAL)), **quiet}
    return [
        Case("SharedBottom", SharedBottomClassifier(**quiet), tabular_data, "tabular"),
        Case("CrossStitch", CrossStitchClassifier(**fields), tabular_data, "tabular"),
        Case("MMoE", MMoEClassifier(**fields), tabular_data, "tabular"),
        Case("SNR", SNRClassifier(**fields), tabular_data, "tabular"),
        Case("PLE", PLEClassifier(**fields), tabular_data, "tabular"),
        Case("MSSM", MSSMClassifier(**fields), tabular_data, "tabular"),
        Case("AutoTask", AutoTaskClassifier(**quiet), scenario_data, "scenario"),
        Case(
            "MultiTaskDNN", MultiTaskDNNClassifier(**quiet), scenario_data, "scenario"
        ),
        Case(
            "GalleryEmbedder",
            GalleryEmbedder(
                backbone=GALLERY_BACKBONE,
                image_size=GALLERY_IMAGE_SIZE,
                lr=1e-3,
                **quiet,
            ),
            gallery_data,
            "gallery",
        ),
    ]


# ------------------------------------------------------- the bare torch loop


class _Captured(Exception):
    pass


def capture_net(estimator, X, y):
    """The initialized skorch net and the inputs ``fit`` would train it on,
    without training: (net, inputs, Y)."""
    seen = {}
    original = MultiTaskNet.partial_fit

    def stop(net, X, y=None, **fit_params):
        seen.update(net=net, X=X, y=y)
        raise _Captured

    MultiTaskNet.partial_fit = stop
    try:
        estimator.fit(X, y)
    except _Captured:
        pass
    finally:
        MultiTaskNet.partial_fit = original
    return seen["net"], seen["X"], seen["y"]


class BareSetup:
    """What a hand-written loop works from: the estimator's module (a copy of
    its initial weights), its loss and loss weighter, and its inputs as
    tensors, sliced per batch."""

    def __init__(self, estimator, X, y):
        net, inputs, Y = capture_net(clone(estimator), X, y)
        self.net = net
        self.module = copy.deepcopy(net.module_)
        self.init_state = copy.deepcopy(self.module.state_dict())
        self.Y = torch.as_tensor(np.asarray(Y, dtype=np.float32))
        self.gallery = hasattr(inputs, "galleries")
        if self.gallery:  # decode once: (k_i, 3, S, S) per gallery
            self.images = [inputs[i][0] for i in range(len(inputs))]
            self.sizes = torch.tensor([len(g) for g in self.images])
        elif isinstance(inputs, dict):
            self.X = {k: torch.as_tensor(np.asarray(v)) for k, v in inputs.items()}
        else:
            self.X = torch.as_tensor(np.asarray(inputs))
        self.n = len(self.Y)
        self.compiled = None

    def batch(self, index):
        """(args, kwargs) of the module's forward for rows ``index``."""
        if self.gallery:
            images = torch.cat([self.images[i] for i in index.tolist()])
            return (images, self.sizes[index]), {}
        if isinstance(self.X, dict):
            return (), {k: v[index] for k, v in self.X.items()}
        return (self.X[index],), {}

    def forward_module(self, compiled):
        if not compiled:
            return self.module
        if self.compiled is None:
            self.compiled = torch.compile(self.module)
        return self.compiled

    def train(self, epochs, seed, compiled=False):
        net, module = self.net, self.module
        forward = self.forward_module(compiled)
        torch.manual_seed(seed)
        module.load_state_dict(self.init_state)
        module.train()
        weighter = copy.deepcopy(net.loss_weighter_)
        params = [
            p for p in (*module.parameters(), *weighter.parameters()) if p.requires_grad
        ]
        optimizer = type(net.optimizer_)(params, **net.optimizer_.defaults)
        criterion = net.criterion_
        regularization = getattr(module, "regularization", None)
        labelled = net.weighter_takes_labelled_
        for _ in range(epochs):
            order = torch.randperm(self.n)
            for start in range(0, self.n, net.batch_size):
                index = order[start : start + net.batch_size]
                args, kwargs = self.batch(index)
                target = self.Y[index]
                losses = criterion(forward(*args, **kwargs), target)
                if labelled:
                    loss = weighter(losses, labelled=~torch.isnan(target).all(dim=0))
                else:
                    loss = weighter(losses)
                if regularization is not None:
                    loss = loss + regularization()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

    def infer(self, index, compiled=False):
        """Eval-mode outputs for rows ``index``, as ``predict_proba`` /
        ``transform`` computes them (a gallery model's pooled embedding)."""
        module = self.forward_module(compiled)
        self.module.eval()
        args, kwargs = self.batch(index)
        with torch.inference_mode():
            if self.gallery:
                return self.module.embed(*args)
            return module(*args, **kwargs)

    def infer_all(self, compiled=False):
        """Eval outputs for every row, ``batch_size`` rows per forward (as the
        estimator slices them)."""
        step = self.net.batch_size
        for start in range(0, self.n, step):
            self.infer(torch.arange(start, min(start + step, self.n)), compiled)


# ---------------------------------------------------------------- timing


def interleaved(variants, repeats):
    """{name: (wall seconds list, CPU seconds list)}; every repeat runs each
    variant once, the order rotated by one each repeat."""
    names = list(variants)
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            variants[name](r)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


def summary(values):
    return statistics.median(values), min(values), max(values)


def ratios(numerator, denominator):
    return [a / b for a, b in zip(numerator, denominator)]


def latencies(variants, calls, blocks=10):
    """{name: per-call seconds}, ``calls`` calls each, in interleaved blocks."""
    out = {name: [] for name in variants}
    per_block = max(calls // blocks, 1)
    for b in range(blocks):
        names = list(variants)
        for name in names[b % len(names) :] + names[: b % len(names)]:
            for _ in range(per_block):
                start = time.perf_counter()
                variants[name]()
                out[name].append(time.perf_counter() - start)
    return out


def p99(values):
    return float(np.percentile(values, 99))


# ------------------------------------------------------------ measurements


class Results:
    """Rows of the CSV: section, estimator, variant, setting, metric, median,
    low, high (the range over repeats)."""

    def __init__(self):
        self.rows = []

    def add(self, section, estimator, variant, setting, metric, values):
        median, low, high = summary(values) if len(values) else (np.nan,) * 3
        self.rows.append(
            {
                "section": section,
                "estimator": estimator,
                "variant": variant,
                "setting": setting,
                "metric": metric,
                "median": float(median),
                "low": float(low),
                "high": float(high),
            }
        )

    def get(self, section, estimator, variant, metric, setting=None):
        for row in self.rows:
            if (row["section"], row["estimator"], row["variant"], row["metric"]) == (
                section,
                estimator,
                variant,
                metric,
            ) and (setting is None or row["setting"] == setting):
                return row
        return None


def fit_variant(estimator, X, y, epochs):
    def run(seed):
        clone(estimator).set_params(max_epochs=epochs, random_state=seed).fit(X, y)

    return run


def measure_training(case, args, results, compile_on):
    n, big = args.rows[case.kind], 4 * args.rows[case.kind]
    tasks = (2, 8) if case.kind != "gallery" else (None,)
    data = {(n, tasks[0]): case.data(n, tasks[0])}
    data[(big, tasks[0])] = case.data(big, tasks[0])
    if len(tasks) > 1:
        data[(n, tasks[1])] = case.data(n, tasks[1])
    X, y = data[(n, tasks[0])]
    setup = BareSetup(case.estimator, X, y)
    epochs = args.epochs
    variants = {"fit": fit_variant(case.estimator, X, y, epochs)}
    variants["bare"] = lambda seed: setup.train(epochs, seed)
    if compile_on and case.kind != "gallery":  # the gallery: backbone inference
        start = time.perf_counter()
        try:
            setup.train(1, 0, compiled=True)  # compiles, untimed
            variants["bare_compiled"] = lambda seed: setup.train(epochs, seed, True)
        except Exception as exc:  # report, do not stop the suite
            print(f"  torch.compile failed for {case.name}: {exc!r:.200}")
            results.add("compile", case.name, "bare_compiled", "", "failed", [1.0])
        results.add(
            "compile", case.name, "bare_compiled", "", "first_epoch_s",
            [time.perf_counter() - start],
        )  # fmt: skip
    keys = {}
    for key in data:
        if key != (n, tasks[0]):
            name = "fit_4n" if key[0] == big else f"fit_{key[1]}tasks"
            keys[name] = key
            variants[name] = fit_variant(case.estimator, *data[key], epochs)
    setup.train(1, 0)  # warm-up (lazy imports, allocator)
    fit_variant(case.estimator, X, y, 1)(0)
    wall, cpu = interleaved(variants, args.repeats)
    setting = f"n={n} tasks={tasks[0]}"
    for name in variants:
        key = keys.get(name, (n, tasks[0]))
        rows_per_s = [key[0] * epochs / s for s in wall[name]]
        results.add(
            "training", case.name, name, f"n={key[0]} tasks={key[1]}", "rows_per_s",
            rows_per_s,
        )  # fmt: skip
    results.add(
        "overhead", case.name, "fit/bare", setting, "wall_ratio",
        ratios(wall["fit"], wall["bare"]),
    )  # fmt: skip
    results.add(
        "overhead", case.name, "fit/bare", setting, "cpu_ratio",
        ratios(cpu["fit"], cpu["bare"]),
    )  # fmt: skip
    if "bare_compiled" in wall:
        results.add(
            "compile", case.name, "bare_compiled/bare", setting, "train_wall_ratio",
            ratios(wall["bare_compiled"], wall["bare"]),
        )  # fmt: skip
    for name in variants:
        if name.startswith("fit_"):
            results.add(
                "growth", case.name, name + "/fit", setting, "time_ratio",
                ratios(wall[name], wall["fit"]),
            )  # fmt: skip
    return setup, X, y


def measure_inference(case, setup, X, y, args, results, compile_on):
    """One-row latency and batch throughput of the fitted estimator against
    the bare module (the same weights) on the same rows."""
    fitted = clone(case.estimator).set_params(max_epochs=1).fit(X, y)
    setup.module.load_state_dict(fitted.net_.module_.state_dict())
    gallery = case.kind == "gallery"
    predict = fitted.transform if gallery else fitted.predict_proba
    one = X[:1]
    row = torch.tensor([0])
    variants = {"estimator": lambda: predict(one), "bare": lambda: setup.infer(row)}
    if compile_on and setup.compiled is not None and not gallery:
        try:
            for _ in range(3):  # compile the eval graphs, untimed
                setup.infer(row, compiled=True)
                setup.infer_all(compiled=True)
            variants["bare_compiled"] = lambda: setup.infer(row, compiled=True)
        except Exception as exc:
            print(f"  compiled inference failed for {case.name}: {exc!r:.200}")
    for run in variants.values():  # warm-up
        for _ in range(5):
            run()
    timings = latencies(variants, args.calls)
    for name, values in timings.items():
        results.add("latency", case.name, name, "1 row", "median_ms", [
            1e3 * statistics.median(values)
        ])  # fmt: skip
        results.add("latency", case.name, name, "1 row", "p99_ms", [1e3 * p99(values)])
    batch = {"estimator": lambda r: predict(X), "bare": lambda r: setup.infer_all()}
    if "bare_compiled" in variants:
        batch["bare_compiled"] = lambda r: setup.infer_all(compiled=True)
    wall, _ = interleaved(batch, args.repeats)
    for name, values in wall.items():
        results.add(
            "batch_inference", case.name, name, f"n={len(X)}", "rows_per_s",
            [len(X) / s for s in values],
        )  # fmt: skip
    results.add(
        "batch_inference", case.name, "estimator/bare", f"n={len(X)}", "time_ratio",
        ratios(wall["estimator"], wall["bare"]),
    )  # fmt: skip
    if gallery:
        measure_encoder(fitted, setup, X, args, results, compile_on)


def measure_encoder(fitted, setup, galleries, args, results, compile_on):
    """GalleryEmbedder.transform's images/s against the torchvision backbone's
    convolutional trunk (no pooling, no heads) and the library's encoder,
    on the same decoded image tensors, ``batch_size`` galleries per pass."""
    import torchvision

    model = getattr(torchvision.models, GALLERY_BACKBONE)()
    trunk = torch.nn.Sequential(*list(model.children())[:-2]).eval()
    encoder = setup.module.encoder.eval()
    step = fitted.batch_size
    chunks = [
        torch.cat(setup.images[start : start + step])
        for start in range(0, len(setup.images), step)
    ]
    n_images = sum(len(c) for c in chunks)

    def over_chunks(fn):
        def run(r):
            with torch.inference_mode():
                for chunk in chunks:
                    fn(chunk)

        return run

    variants = {
        "transform": lambda r: fitted.transform(galleries),
        "encoder": over_chunks(encoder),
        "backbone": over_chunks(trunk),
    }
    if compile_on:
        try:
            compiled = torch.compile(trunk)
            over_chunks(compiled)(0)
            over_chunks(compiled)(0)
            variants["backbone_compiled"] = over_chunks(compiled)
        except Exception as exc:
            print(f"  torch.compile of the backbone failed: {exc!r:.200}")
    for run in variants.values():
        run(0)
    wall, _ = interleaved(variants, args.repeats)
    setting = f"{GALLERY_BACKBONE} {GALLERY_IMAGE_SIZE}px, {n_images} images"
    for name, values in wall.items():
        results.add(
            "encoder", "GalleryEmbedder", name, setting, "images_per_s",
            [n_images / s for s in values],
        )  # fmt: skip
        if name != "backbone":
            results.add(
                "encoder", "GalleryEmbedder", f"{name}/backbone", setting,
                "time_ratio", ratios(values, wall["backbone"]),
            )  # fmt: skip


# ----------------------------------------------------------------- memory


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def memory_probe(spec):
    """Run in a fresh process: how far one fit (or bare loop) raises the
    resident set above what the process held once the data was built, in
    MiB. The kernel's peak-RSS mark (VmHWM) is reset first (``clear_refs``),
    so import-time peaks do not hide the fit's."""
    torch.set_num_threads(spec["threads"])
    case = next(c for c in cases() if c.name == spec["estimator"])
    X, y = case.data(spec["n"], spec["tasks"])
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    if spec["variant"] == "bare":
        BareSetup(case.estimator, X, y).train(spec["epochs"], 0)
    else:
        fit_variant(case.estimator, X, y, spec["epochs"])(0)
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    print(json.dumps({"peak_mib": (peak - before) / 1024, "seconds": seconds}))


def measure_memory(case, args, results):
    """Peak memory of one-epoch fits (and of the bare loop) in subprocesses;
    --quick probes the base fit of the first estimator only."""
    n = args.rows[case.kind]
    tasks = (2, 8) if case.kind != "gallery" else (None,)
    settings = [("fit", n, tasks[0]), ("bare", n, tasks[0]), ("fit", 4 * n, tasks[0])]
    if len(tasks) > 1:
        settings.append(("fit", n, tasks[1]))
    if args.quick:
        settings = settings[:1]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    for variant, rows, t in settings:
        spec = {
            "estimator": case.name,
            "variant": variant,
            "n": rows,
            "tasks": t,
            "epochs": 1,
            "threads": args.threads,
        }
        out = subprocess.run(
            [sys.executable, __file__, "--memory-probe", json.dumps(spec)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if out.returncode != 0:
            print(f"  memory probe failed for {spec}: {out.stderr[-500:]}")
            continue
        peak = json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]
        results.add("memory", case.name, variant, f"n={rows} tasks={t}", "peak_mib", [
            peak
        ])  # fmt: skip


# ----------------------------------------------------------------- tables


def fmt(row, digits=2, spread=True):
    if row is None:
        return "-"
    value = f"{row['median']:.{digits}f}"
    if spread and row["low"] != row["high"]:
        value += f" [{row['low']:.{digits}f}, {row['high']:.{digits}f}]"
    return value


def fmt_int(row):
    return "-" if row is None else f"{row['median']:,.0f}"


def tables(results, names):
    r = results
    out = ["## Training: fit vs the bare loop on the same module", ""]
    out += [
        "| estimator | setting | fit rows/s | bare rows/s | fit / bare time "
        "[range] | fit / bare CPU time | compiled bare / bare time |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        over = r.get("overhead", name, "fit/bare", "wall_ratio")
        if over is None:
            continue
        out.append(
            f"| {name} | {over['setting']} | "
            f"{fmt_int(r.get('training', name, 'fit', 'rows_per_s'))} | "
            f"{fmt_int(r.get('training', name, 'bare', 'rows_per_s'))} | "
            f"{fmt(over)} | {fmt(r.get('overhead', name, 'fit/bare', 'cpu_ratio'))} | "
            f"{fmt(r.get('compile', name, 'bare_compiled/bare', 'train_wall_ratio'))} |"
        )
    out += ["", "## Growth of fit's cost with rows and tasks; peak memory", ""]
    out += [
        "| estimator | base setting | time at 4x rows / base [range] | time at 8 "
        "tasks / 2 tasks [range] | fit peak MiB: base / 4x rows / 8 tasks | bare "
        "loop peak MiB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        rows = r.get("growth", name, "fit_4n/fit", "time_ratio")
        if rows is None:
            continue
        peaks = [
            f"{x['median']:.0f}"
            for x in r.rows
            if x["section"] == "memory"
            and x["estimator"] == name
            and x["variant"] == "fit"
        ]
        bare = r.get("memory", name, "bare", "peak_mib")
        out.append(
            f"| {name} | {rows['setting']} | {fmt(rows)} | "
            f"{fmt(r.get('growth', name, 'fit_8tasks/fit', 'time_ratio'))} | "
            f"{' / '.join(peaks) or '-'} | {fmt(bare, 0, False)} |"
        )
    out += ["", "## Inference: one row and a batch", ""]
    out += [
        "| estimator | 1 row: estimator median / p99 ms | bare module median / p99 "
        "ms | compiled bare median ms | batch: estimator rows/s | bare rows/s | "
        "estimator / bare batch time | compiled bare rows/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        if r.get("latency", name, "estimator", "median_ms") is None:
            continue
        lat = {}
        for variant in ("estimator", "bare"):
            median = r.get("latency", name, variant, "median_ms")["median"]
            tail = r.get("latency", name, variant, "p99_ms")["median"]
            lat[variant] = f"{median:.3f} / {tail:.3f}"
        compiled = r.get("latency", name, "bare_compiled", "median_ms")
        batch = {
            v: r.get("batch_inference", name, v, "rows_per_s")
            for v in ("estimator", "bare", "bare_compiled")
        }
        ratio = r.get("batch_inference", name, "estimator/bare", "time_ratio")
        out.append(
            f"| {name} | {lat['estimator']} | {lat['bare']} | "
            f"{fmt(compiled, 3, False)} | {fmt_int(batch['estimator'])} | "
            f"{fmt_int(batch['bare'])} | {fmt(ratio)} | "
            f"{fmt_int(batch['bare_compiled'])} |"
        )
    encoder = [x for x in r.rows if x["section"] == "encoder"]
    if encoder:
        out += [
            "",
            f"## Gallery encoder vs bare backbone ({encoder[0]['setting']})",
            "",
        ]
        out += [
            "| path | images/s | time / bare backbone [range] |",
            "| --- | --- | --- |",
        ]
        for x in encoder:
            if x["metric"] != "images_per_s":
                continue
            ratio = r.get(
                "encoder", "GalleryEmbedder", f"{x['variant']}/backbone", "time_ratio"
            )
            out.append(
                f"| {x['variant']} | {fmt_int(x)} | {fmt(ratio) if ratio else '1'} |"
            )
    compiles = [
        x
        for x in r.rows
        if x["section"] == "compile" and x["metric"] == "first_epoch_s"
    ]
    if compiles:
        out += ["", "## torch.compile: first (compiling) epoch of the bare loop, s", ""]
        out += ["| estimator | seconds |", "| --- | --- |"]
        out += [f"| {x['estimator']} | {x['median']:.1f} |" for x in compiles]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument(
        "--estimators", nargs="*", default=None, help="names, e.g. MMoE MSSM"
    )
    parser.add_argument(
        "--compile",
        nargs="*",
        default=None,
        help="estimators whose bare loop (GalleryEmbedder: its backbone) is also "
        "timed under torch.compile (default: SharedBottom GalleryEmbedder; "
        "--quick: none); pass no name to skip it",
    )
    parser.add_argument(
        "--rows", type=int, default=None, help="tabular rows (default 8192)"
    )
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    torch.set_num_threads(args.threads)
    if args.memory_probe:
        return memory_probe(json.loads(args.memory_probe))
    if args.quick:
        rows = args.rows or 256
        args.rows = {"tabular": rows, "scenario": rows, "gallery": rows // 32}
        args.repeats = args.repeats or 1
        args.epochs = args.epochs or 1
        args.calls = 20
        default_compile = []
    else:
        rows = args.rows or 4096
        args.rows = {"tabular": rows, "scenario": rows, "gallery": rows // 128}
        args.repeats = args.repeats or 3
        args.epochs = args.epochs or 2
        args.calls = 300
        # Compiling takes minutes per model on a small CPU: by default the
        # simplest tabular model and the gallery backbone (inference).
        default_compile = ["SharedBottom", "GalleryEmbedder"]
    compile_names = default_compile if args.compile is None else args.compile
    selected = [
        c for c in cases() if args.estimators is None or c.name in args.estimators
    ]
    load = os.getloadavg()
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{args.threads} thread(s); load average at start {load[0]:.2f}"
    )
    results = Results()
    started = time.perf_counter()
    for case in selected:
        t0 = time.perf_counter()
        compile_on = case.name in compile_names
        setup, X, y = measure_training(case, args, results, compile_on)
        measure_inference(case, setup, X, y, args, results, compile_on)
        if not args.no_memory and (not args.quick or case is selected[0]):
            measure_memory(case, args, results)  # --quick: one probe
        print(f"  {case.name}: {time.perf_counter() - t0:.0f} s")
    load_end = os.getloadavg()
    text = tables(results, [c.name for c in selected])
    print(text)
    print(
        f"total {time.perf_counter() - started:.0f} s; load average (1, 5, 15 min) "
        f"at start {load}, at end {load_end}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / ("performance_quick.csv" if args.quick else "performance.csv")
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(results.rows[0]))
        writer.writeheader()
        writer.writerows(results.rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
