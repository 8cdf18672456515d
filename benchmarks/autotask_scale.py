"""AutoTaskClassifier at width and scale (issue 14, items 1-4).

Four sections, each printing a table and adding rows to the CSV:

- ``width``: synthetic numeric data (1,024 rows, 10 tasks, 1 epoch) at
  d = 16, 128, 1,024 and 4,096 feature columns. Arms: the defaults
  (``block_embed_dim="auto"``, ``attention_window=128``); the paper
  (``block_embed_dim="paper", attention_window=None``), run only where its
  training state fits ``--memory-budget-gb``, otherwise counted on the meta
  device and reported as not run; ``attention_window=None`` at the auto
  width (the window's effect). Each fit runs in a fresh subprocess, every
  (d, arm) once per round over ``--repeats`` rounds (3), which reports fit
  wall and CPU time, epoch time per row, the peak resident set the fit adds
  (``/proc/self/status`` VmHWM after resetting the mark), the parameter
  count and one-row ``predict_proba`` latency; a fit past ``--timeout``
  seconds is killed and recorded as timed out.
- ``throughput``: the Adult scenarios (``load_adult_scenarios()``), AutoTask
  against MultiTaskDNN, both at their defaults but ``max_epochs=3``,
  interleaved (A, B, A, B, ...); the time ratio per pair, its median and
  range. Then a ``torch.profiler`` profile of one AutoTask epoch, its time
  grouped by part of the model (forward and backward), optimizer and data
  loading, and the top operators by self CPU time.
- ``tasks``: synthetic data at d = 64 with N = 10, 100 and 1,000 task ids
  (4,096 rows), one fresh subprocess per fit, the task counts interleaved
  over ``--repeats`` rounds: fit time, memory, parameters
  and the task embedding tables' share, one-row latency.
- ``serving``: the Adult AutoTask model: one-row ``predict_proba`` of a
  DataFrame row and of a numpy row against the module's forward on the same
  prepared tensors (``torch.inference_mode``), interleaved in blocks, median
  and p90; onnxruntime's one-row latency of ``export_onnx`` and its largest
  difference from ``predict_proba`` over the test rows.

    OMP_NUM_THREADS=1 python benchmarks/autotask_scale.py \
        [--sections width,throughput,tasks,serving] [--quick] [--threads 1] \
        [--repeats 3] [--timeout 300] [--memory-budget-gb 6] [--out-dir DIR]

A full run takes about 9 minutes on 2 shared cores with 1 thread; ``--quick``
about 1.5 minutes.

Writes ``docs/results/autotask_scale.csv``, ``autotask_scale.md`` and
``autotask_scale.png`` (with ``--quick``: into ``--out-dir``, by default a
temporary folder). Text below the line ``<!-- notes -->`` of an existing
page is kept when the page is written again.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
NOTES_MARK = "<!-- notes -->"
SECTIONS = ("width", "throughput", "tasks", "serving")

ARMS = {
    "defaults": {},
    "paper": {"block_embed_dim": "paper", "attention_window": None},
    "no_window": {"attention_window": None},
}
ARM_LABELS = {
    "defaults": "defaults (auto width, window 128)",
    "paper": "paper (e2 = d*e1, full causal)",
    "no_window": "auto width, attention_window=None",
}
# Adam keeps the weights, their gradients and two moments: 16 bytes a weight.
TRAIN_BYTES_PER_PARAM = 16
FULL = SimpleNamespace(
    widths=(16, 128, 1024, 4096),
    width_rows=1024,
    width_tasks=10,
    task_counts=(10, 100, 1000),
    task_d=64,
    task_rows=4096,
    latency_calls=200,
    serving_calls=3000,
    repeats=3,
    adult_rows=None,
    timeout=300,
)
QUICK = SimpleNamespace(
    widths=(16, 160),
    width_rows=128,
    width_tasks=10,
    task_counts=(10, 100),
    task_d=16,
    task_rows=512,
    latency_calls=20,
    serving_calls=100,
    repeats=1,
    adult_rows=2000,
    timeout=120,
)

# ------------------------------------------------------------------- data


def synthetic(n_rows, d, n_tasks, seed=0):
    """(X, y): d standard normal features and a task id column (last, ints
    0..n_tasks-1 as floats); y = 1 when x0 + s * x1 > 0, with s = +1 for
    even and -1 for odd task ids, so the task matters."""
    rng = np.random.RandomState(seed)
    features = rng.normal(size=(n_rows, d))
    task = rng.randint(n_tasks, size=n_rows)
    sign = np.where(task % 2 == 0, 1.0, -1.0)
    y = (features[:, 0] + sign * features[:, min(1, d - 1)] > 0).astype(int)
    return np.column_stack([features, task.astype(float)]), y


def adult(quick_rows=None):
    """The Adult scenarios bunch; ``quick_rows`` keeps that many rows."""
    from mtlestimators.datasets import load_adult_scenarios

    b = load_adult_scenarios()
    if quick_rows:
        b.X_train, b.y_train = b.X_train.iloc[:quick_rows], b.y_train.iloc[:quick_rows]
        b.X_test, b.y_test = b.X_test.iloc[:quick_rows], b.y_test.iloc[:quick_rows]
    return b


# ---------------------------------------------------------------- helpers


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak():
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def module_size(module):
    """(parameters, task embedding table entries, e2) of an AutoTaskModule."""
    params = sum(p.numel() for p in module.parameters())
    tables = sum(
        getattr(module, name).weight.numel()
        for name in ("task_embed_1", "task_embed_2")
        if getattr(module, name, None) is not None
    )
    return int(params), int(tables), int(module.row_embed_2.out_features)


def meta_size(params, d, n_tasks):
    """Size of the module AutoTaskClassifier(**params) would build for d
    feature columns and n_tasks tasks, built on the meta device (no memory)."""
    from mtlestimators import AutoTaskClassifier

    estimator = AutoTaskClassifier(**params)
    cls, kwargs = estimator._build_module([SimpleNamespace(output_dim=1)], d, n_tasks)
    with torch.device("meta"):
        module = cls(**kwargs)
    return module_size(module)


def one_row_latency(predict, rows, calls):
    """(median, p90) seconds of ``predict(row)`` over ``calls`` calls,
    cycling through ``rows``, after 5 warm-up calls."""
    for row in rows[:5]:
        predict(row)
    times = []
    for i in range(calls):
        row = rows[i % len(rows)]
        start = time.perf_counter()
        predict(row)
        times.append(time.perf_counter() - start)
    return statistics.median(times), float(np.percentile(times, 90))


def interleaved_latency(variants, calls, blocks=10):
    """{name: per-call seconds}: ``calls`` calls of every variant in
    ``blocks`` blocks, the order of the variants rotated each block; each
    variant is a function of the call's index."""
    out = {name: [] for name in variants}
    per_block = max(calls // blocks, 1)
    names = list(variants)
    for b in range(blocks):
        for name in names[b % len(names) :] + names[: b % len(names)]:
            run, times = variants[name], out[name]
            for i in range(b * per_block, (b + 1) * per_block):
                start = time.perf_counter()
                run(i)
                times.append(time.perf_counter() - start)
    return out


def spread(values):
    return statistics.median(values), min(values), max(values)


class Results:
    """CSV rows: section, variant, setting, metric, median, low, high, status."""

    def __init__(self):
        self.rows = []

    def add(self, section, variant, setting, metric, values, status="ok"):
        if values is None or (isinstance(values, list) and not values):
            median = low = high = float("nan")
        elif isinstance(values, list):
            median, low, high = spread(values)
        else:
            median = low = high = values
        self.rows.append(
            {
                "section": section,
                "variant": variant,
                "setting": setting,
                "metric": metric,
                "median": float(median),
                "low": float(low),
                "high": float(high),
                "status": status,
            }
        )

    def get(self, section, variant, setting, metric):
        for row in self.rows:
            if (row["section"], row["variant"], row["setting"], row["metric"]) == (
                section,
                variant,
                setting,
                metric,
            ):
                return row
        return None

    def value(self, *key):
        row = self.get(*key)
        return float("nan") if row is None else row["median"]


# ------------------------------------------------------- subprocess probes


def probe(spec):
    """Run in a fresh process: one fit of AutoTaskClassifier(**spec["params"])
    on synthetic data, then its one-row latency; prints one JSON line."""
    torch.set_num_threads(spec["threads"])
    warnings.simplefilter("ignore")
    from mtlestimators import AutoTaskClassifier

    params = dict(spec["params"], max_epochs=1, verbose=0, random_state=0)
    # Warm-up on a tiny problem: lazy imports and kernel set-up, without
    # allocating what the real fit needs (so freed pages do not hide its peak).
    AutoTaskClassifier(**params).fit(*synthetic(32, 4, 2))
    X, y = synthetic(spec["rows"], spec["d"], spec["tasks"])
    gc.collect()
    _reset_peak()
    before = _status_kib("VmRSS")
    start, start_cpu = time.perf_counter(), time.process_time()
    model = AutoTaskClassifier(**params).fit(X, y)
    fit_s = time.perf_counter() - start
    fit_cpu_s = time.process_time() - start_cpu
    peak = _status_kib("VmHWM")
    n_params, tables, e2 = module_size(model.net_.module_)
    rows = [X[i : i + 1] for i in range(min(len(X), 50))]
    median, p90 = one_row_latency(model.predict_proba, rows, spec["calls"])
    out = {
        "fit_s": fit_s,
        "fit_cpu_s": fit_cpu_s,
        "epoch_s": float(model.history_[-1]["dur"]),
        "peak_mib": (peak - before) / 1024,
        "baseline_mib": before / 1024,
        "params": n_params,
        "tables": tables,
        "e2": e2,
        "latency_ms": 1e3 * median,
        "latency_p90_ms": 1e3 * p90,
    }
    print(json.dumps(out))


# Seconds a probe gets beyond the fit's timeout: imports, the warm-up fit,
# building the data and the one-row latency calls.
PROBE_ALLOWANCE = 60


def run_probe(spec, timeout, threads):
    """The probe's dict, or {"status": "timed out" | "failed: ..."}; the fit
    may take ``timeout`` seconds, the whole subprocess ``PROBE_ALLOWANCE``
    more."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--probe", json.dumps(spec)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout + PROBE_ALLOWANCE,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"status": f"timed out (fit > {timeout:.0f} s)"}
    if out.returncode != 0:
        why = "killed (out of memory?)" if out.returncode in (-9, 137) else "error"
        tail = out.stderr.strip().splitlines()[-1:] or [""]
        print(f"    probe failed ({out.returncode}): {tail[0][:300]}")
        return {"status": f"failed: {why}"}
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # The fit finished within the allowance but past its own limit: kept.
    result["status"] = "ok" if result["fit_s"] <= timeout else "ok, past timeout"
    return result


# ------------------------------------------------------------- section 1


def section_width(cfg, args, results):
    """Cost at growing d for the three arms: one subprocess per fit, every
    (d, arm) once per round, ``cfg.repeats`` rounds."""
    print(
        f"\n== width: d features, {cfg.width_rows} rows, {cfg.width_tasks} "
        f"tasks, 1 epoch, {cfg.repeats} interleaved repeats"
    )
    budget = args.memory_budget_gb * 1e9
    plan = []
    for d in cfg.widths:
        for arm, params in ARMS.items():
            if arm == "no_window" and d + 1 <= 128:
                continue  # the window only acts beyond 128 tokens: as defaults
            setting = f"d={d}"
            n_params, tables, e2 = meta_size(params, d, cfg.width_tasks)
            need = n_params * TRAIN_BYTES_PER_PARAM
            results.add("width", arm, setting, "params", n_params)
            results.add("width", arm, setting, "e2", e2)
            if need > budget:
                status = (
                    f"not run: {n_params:,} parameters, {need / 1e9:.1f} GB "
                    "weights+gradients+Adam"
                )
                results.add("width", arm, setting, "fit_s", None, status)
                print(f"  d={d:5d} {arm:10s} {status}")
                continue
            spec = {
                "d": d,
                "rows": cfg.width_rows,
                "tasks": cfg.width_tasks,
                "params": params,
                "threads": args.threads,
                "calls": cfg.latency_calls,
            }
            plan.append((d, arm, spec, []))
    for r in range(cfg.repeats):
        for d, arm, spec, outs in plan:
            if outs and not outs[-1]["status"].startswith("ok"):
                continue  # timed out or failed once: not tried again
            t0 = time.perf_counter()
            out = run_probe(spec, args.timeout or cfg.timeout, args.threads)
            outs.append(out)
            print(
                f"  repeat {r} d={d:5d} {arm:10s} {out['status']:10s} "
                + (
                    f"fit {out['fit_s']:7.2f} s (CPU {out['fit_cpu_s']:7.2f} s), "
                    f"{1e6 * out['epoch_s'] / cfg.width_rows:8.1f} us/row, peak "
                    f"+{out['peak_mib']:7.0f} MiB, {out['params']:,} params, "
                    f"1 row {out['latency_ms']:.2f} ms"
                    if out["status"].startswith("ok")
                    else ""
                )
                + f"  [{time.perf_counter() - t0:.0f} s]"
            )
    for d, arm, _spec, outs in plan:
        _record_probe(results, "width", arm, f"d={d}", outs, cfg.width_rows)


def _record_probe(results, section, variant, setting, outs, rows):
    """Rows of the CSV from one probe's dict or a list of repeated probes'
    (median and range over those that finished)."""
    outs = outs if isinstance(outs, list) else [outs]
    done = [o for o in outs if o["status"].startswith("ok")]
    if not done:
        results.add(section, variant, setting, "fit_s", None, outs[0]["status"])
        return
    status = next((o["status"] for o in outs if o["status"] != "ok"), "ok")

    def add(metric, values):
        results.add(section, variant, setting, metric, list(values), status)

    add("fit_s", (o["fit_s"] for o in done))
    add("fit_cpu_s", (o["fit_cpu_s"] for o in done))
    add("epoch_us_per_row", (1e6 * o["epoch_s"] / rows for o in done))
    for metric, key in (
        ("peak_mib", "peak_mib"),
        ("baseline_mib", "baseline_mib"),
        ("latency_ms", "latency_ms"),
        ("latency_p90_ms", "latency_p90_ms"),
        ("fitted_params", "params"),
        ("table_params", "tables"),
    ):
        add(metric, (o[key] for o in done))
    add("repeats", [len(done)])


def growth_exponent(results, section, variant, metric, a, b, xa, xb):
    """log(metric(b) / metric(a)) / log(xb / xa): 1 = linear, 2 = quadratic."""
    va, vb = (
        results.value(section, variant, a, metric),
        results.value(section, variant, b, metric),
    )
    if not (va > 0 and vb > 0):
        return float("nan")
    return math.log(vb / va) / math.log(xb / xa)


# ------------------------------------------------------------- section 2


def section_throughput(cfg, args, results, state):
    """AutoTask vs MultiTaskDNN on Adult, interleaved; then a profile."""
    from mtlestimators import AutoTaskClassifier, MultiTaskDNNClassifier

    b = state.setdefault("adult", adult(cfg.adult_rows))
    X, y = b.X_train, b.y_train
    print(
        f"\n== throughput: Adult scenarios, {X.shape[0]} rows x {X.shape[1]} "
        f"columns, max_epochs=3, {cfg.repeats} interleaved repeats"
    )
    models = {
        "AutoTask": lambda seed: AutoTaskClassifier(
            task_column=b.task_column, max_epochs=3, verbose=0, random_state=seed
        ),
        "MultiTaskDNN": lambda seed: MultiTaskDNNClassifier(
            task_column=b.task_column, max_epochs=3, verbose=0, random_state=seed
        ),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for make in models.values():  # warm-up
            make(0).set_params(max_epochs=1).fit(X.iloc[:512], y.iloc[:512])
        wall = {name: [] for name in models}
        cpu = {name: [] for name in models}
        epochs = {name: [] for name in models}
        for r in range(cfg.repeats):
            for name, make in models.items():  # A, B, A, B, ...
                gc.collect()
                start, start_cpu = time.perf_counter(), time.process_time()
                model = make(r).fit(X, y)
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
                epochs[name].append(len(model.history_))
                print(f"  repeat {r}: {name:12s} {wall[name][-1]:6.2f} s")
                if name == "AutoTask":
                    state["fitted"] = model
    setting = f"n={len(X)} epochs=3"
    for name in models:
        results.add("throughput", name, setting, "fit_s", wall[name])
        for r, seconds in enumerate(wall[name]):
            results.add("throughput", name, setting, f"fit_s_repeat{r}", seconds)
        results.add("throughput", name, setting, "cpu_s", cpu[name])
        results.add(
            "throughput",
            name,
            setting,
            "rows_per_s",
            [len(X) * e / s for e, s in zip(epochs[name], wall[name])],
        )
        results.add("throughput", name, setting, "epochs", epochs[name])
    ratios = [a / m for a, m in zip(wall["AutoTask"], wall["MultiTaskDNN"])]
    results.add("throughput", "AutoTask/MultiTaskDNN", setting, "time_ratio", ratios)
    results.add(
        "throughput",
        "AutoTask/MultiTaskDNN",
        setting,
        "cpu_ratio",
        [a / m for a, m in zip(cpu["AutoTask"], cpu["MultiTaskDNN"])],
    )
    med, low, high = spread(ratios)
    print(
        f"  AutoTask / MultiTaskDNN fit time: median {med:.2f} [{low:.2f}, {high:.2f}]"
    )
    profile_epoch(b, results, state)


class _ProfileLabels:
    """Profiler ranges around parts of the AutoTask module (forward hooks),
    the loss, each epoch (a skorch callback) and each batch's slicing."""

    def __init__(self):
        self.stack = []
        self.handles = []

    def enter(self, label):
        rf = torch.autograd.profiler.record_function(label)
        rf.__enter__()
        self.stack.append(rf)

    def exit(self):
        self.stack.pop().__exit__(None, None, None)

    def _hook(self, module, label):
        def pre(m, inputs):
            self.enter(f"part:{label}" + ("" if m.training else " [validation]"))

        self.handles.append(module.register_forward_pre_hook(pre))
        self.handles.append(module.register_forward_hook(lambda m, i, o: self.exit()))

    def attach(self, module, criterion):
        """Label the parts; an operator belongs to its innermost part."""
        parts = [(module, "token embedding, fusion, task dropout")]
        facet_1 = getattr(module, "facet_1", None)
        if facet_1 is not None:
            parts.append((facet_1, "facet 1 MLP+norms"))
            parts += [(block.attn, "facet 1 attention") for block in facet_1.blocks]
        for name in ("row_embed_2", "task_embed_2", "facet_2"):
            if getattr(module, name, None) is not None:
                parts.append((getattr(module, name), "facet 2"))
        if getattr(module, "head", None) is not None:
            parts.append((module.head, "head"))
        if isinstance(criterion, torch.nn.Module):
            parts.append((criterion, "loss"))
        for part, label in parts:
            self._hook(part, label)

    def detach(self):
        for handle in self.handles:
            handle.remove()
        self.handles = []


def _epoch_callback(labels):
    from skorch.callbacks import Callback

    class ProfileRanges(Callback):
        def on_train_begin(self, net, **kwargs):
            labels.attach(net.module_, net.criterion_)

        def on_epoch_begin(self, net, **kwargs):
            labels.enter("epoch")

        def on_epoch_end(self, net, **kwargs):
            labels.exit()

        def on_train_end(self, net, **kwargs):
            labels.detach()

    return ProfileRanges()


def attribute(events):
    """{category: self CPU microseconds} inside the "epoch" range: each
    event's self time goes to its nearest labelled range; a backward
    function goes to the part whose forward op has its sequence number."""
    forward_label = {}
    for e in events:
        if (
            e.sequence_nr is not None
            and e.sequence_nr >= 0
            and not e.name.startswith("autograd::")
        ):
            label = _nearest(e, {})
            if (
                label
                and label.startswith("part:")
                and e.sequence_nr not in forward_label
            ):
                forward_label[e.sequence_nr] = label[5:]
    totals = {}
    for e in events:
        label = _nearest(e, forward_label)
        if label is None:
            continue  # outside the epoch
        totals[label] = totals.get(label, 0.0) + e.self_cpu_time_total
    return totals


def _nearest(event, forward_label):
    """The category of an event: its nearest labelled ancestor range."""
    e, inside_backward = event, None
    while e is not None:
        name = e.name
        if name.startswith("autograd::engine::evaluate_function"):
            if e.sequence_nr in forward_label and inside_backward is None:
                inside_backward = f"{forward_label[e.sequence_nr]} (backward)"
            elif inside_backward is None:
                inside_backward = "backward: gradient accumulation, other"
        elif inside_backward is None and name.startswith("part:"):
            if not forward_label:  # first pass: the forward label itself
                return name
            return f"{name[5:]} (forward)"
        elif inside_backward is None and name.startswith("data:"):
            return "data loading (batch slicing)"
        elif inside_backward is None and name.startswith("Optimizer."):
            # skorch calls optimizer.step(closure): forward and backward run
            # inside it, but go to their parts (nearer ranges) first
            return "optimizer step and train-step glue outside the model"
        elif name == "epoch":
            return inside_backward or "other (skorch loop, callbacks, scoring)"
        e = e.cpu_parent
    return None if forward_label or inside_backward is None else inside_backward


def profile_epoch(b, results, state):
    """torch.profiler over one default AutoTask epoch on Adult."""
    from torch.profiler import ProfilerActivity, profile

    from mtlestimators import AutoTaskClassifier

    labels = _ProfileLabels()
    estimator = AutoTaskClassifier(
        task_column=b.task_column,
        max_epochs=1,
        verbose=0,
        random_state=0,
        callbacks=[_epoch_callback(labels)],
    )
    patched = None
    try:  # label the batch slicing of the library's tensor iterator
        from mtlestimators._core.data import TensorData

        original = TensorData.batch

        def batch(self, index):
            with torch.autograd.profiler.record_function("data:batch"):
                return original(self, index)

        TensorData.batch, patched = batch, original
    except (ImportError, AttributeError):
        print("  (batch slicing not labelled: TensorData.batch not found)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plain = time.perf_counter()
            AutoTaskClassifier(
                task_column=b.task_column, max_epochs=1, verbose=0, random_state=0
            ).fit(b.X_train, b.y_train)
            plain = time.perf_counter() - plain
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                start = time.perf_counter()
                model = estimator.fit(b.X_train, b.y_train)
                profiled = time.perf_counter() - start
    finally:
        if patched is not None:
            TensorData.batch = patched
    totals = attribute(prof.events())
    total = sum(totals.values())
    epoch_s = float(model.history_[-1]["dur"])
    setting = f"n={len(b.X_train)} 1 epoch"
    results.add("profile", "AutoTask", setting, "fit_s_unprofiled", plain)
    results.add("profile", "AutoTask", setting, "fit_s_profiled", profiled)
    results.add("profile", "AutoTask", setting, "epoch_s_profiled", epoch_s)
    print(
        f"\n  profile of one epoch: fit {plain:.2f} s unprofiled, {profiled:.2f} s "
        f"profiled (epoch {epoch_s:.2f} s); self CPU time by part:"
    )
    for label, us in sorted(totals.items(), key=lambda kv: -kv[1]):
        results.add("profile", label, setting, "self_cpu_share", us / total)
        results.add("profile", label, setting, "self_cpu_ms", us / 1e3)
        print(f"    {label:50s} {us / 1e3:9.1f} ms  {100 * us / total:5.1f} %")
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    state["profile_table"] = table
    print(table)
    ops = [
        e
        for e in prof.key_averages()
        if not e.key.startswith(("part:", "data:")) and e.key != "epoch"
    ]
    ops.sort(key=lambda e: -e.self_cpu_time_total)
    grand = sum(e.self_cpu_time_total for e in prof.key_averages())
    for e in ops[:15]:
        results.add(
            "profile_ops", e.key, setting, "self_cpu_ms", e.self_cpu_time_total / 1e3
        )
        results.add(
            "profile_ops",
            e.key,
            setting,
            "self_cpu_share",
            e.self_cpu_time_total / grand,
        )
        results.add("profile_ops", e.key, setting, "calls", e.count)


# ------------------------------------------------------------- section 3


def section_tasks(cfg, args, results):
    """Cost at a fixed d with N task ids: one subprocess per fit, the task
    counts interleaved over ``cfg.repeats`` rounds."""
    print(
        f"\n== tasks: d={cfg.task_d}, {cfg.task_rows} rows over N tasks, 1 epoch, "
        f"{cfg.repeats} interleaved repeats"
    )
    outs = {n: [] for n in cfg.task_counts}
    for r in range(cfg.repeats):
        for n_tasks in cfg.task_counts:
            spec = {
                "d": cfg.task_d,
                "rows": cfg.task_rows,
                "tasks": n_tasks,
                "params": {},
                "threads": args.threads,
                "calls": cfg.latency_calls,
            }
            t0 = time.perf_counter()
            out = run_probe(spec, args.timeout or cfg.timeout, args.threads)
            outs[n_tasks].append(out)
            if not out["status"].startswith("ok"):
                print(f"  repeat {r} N={n_tasks:5d} {out['status']}")
                continue
            print(
                f"  repeat {r} N={n_tasks:5d} fit {out['fit_s']:6.2f} s, "
                f"{1e6 * out['epoch_s'] / cfg.task_rows:7.1f} us/row, peak "
                f"+{out['peak_mib']:6.0f} MiB, {out['params']:,} params "
                f"({100 * out['tables'] / out['params']:.1f} % task tables), 1 row "
                f"{out['latency_ms']:.2f} ms  [{time.perf_counter() - t0:.0f} s]"
            )
    for n_tasks, runs in outs.items():
        _record_probe(results, "tasks", "defaults", f"N={n_tasks}", runs, cfg.task_rows)


# ------------------------------------------------------------- section 4


def section_serving(cfg, args, results, state):
    """One-row serving latency of the Adult model against its module; ONNX."""
    from mtlestimators import AutoTaskClassifier

    b = state.setdefault("adult", adult(cfg.adult_rows))
    model = state.get("fitted")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if model is None:
            model = AutoTaskClassifier(
                task_column=b.task_column, max_epochs=3, verbose=0, random_state=0
            ).fit(b.X_train, b.y_train)
    X = b.X_test
    n_rows = min(len(X), 500)
    print(
        f"\n== serving: Adult AutoTask, one-row calls over {n_rows} test rows, "
        f"{cfg.serving_calls} calls per variant in 10 interleaved blocks"
    )
    frames = [X.iloc[[i]] for i in range(n_rows)]
    arrays = X.to_numpy(dtype=object)
    arrays = [arrays[i : i + 1] for i in range(n_rows)]
    module = model.net_.module_
    module.eval()
    tensors = []
    for frame in frames:
        prepared = model._predict_inputs(frame)
        tensors.append({k: torch.as_tensor(v) for k, v in prepared.items()})

    def forward(i):
        with torch.inference_mode():
            module(**tensors[i % n_rows])

    variants = {
        "predict_proba(DataFrame row)": lambda i: model.predict_proba(
            frames[i % n_rows]
        ),
        "predict_proba(numpy row)": lambda i: model.predict_proba(arrays[i % n_rows]),
        "module forward": forward,
    }
    session = onnx_session(model, args, state)
    if session is not None:
        from mtlestimators.export import prepare_inputs

        feeds = [prepare_inputs(model, frame) for frame in frames]
        variants["onnxruntime run (prepared inputs)"] = lambda i: session.run(
            None, feeds[i % n_rows]
        )
        variants["prepare_inputs + onnxruntime run"] = lambda i: session.run(
            None, prepare_inputs(model, frames[i % n_rows])
        )
    # A numpy row of a model fitted on a DataFrame gets scikit-learn's
    # "X does not have valid feature names" warning: not shown while timing.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for run in variants.values():  # warm-up
            for i in range(20):
                run(i)
        times = interleaved_latency(variants, cfg.serving_calls)
    base = statistics.median(times["module forward"])
    for name, values in times.items():
        median, p90 = statistics.median(values), float(np.percentile(values, 90))
        results.add("serving", name, "1 row", "median_ms", 1e3 * median)
        results.add("serving", name, "1 row", "p90_ms", 1e3 * p90)
        results.add("serving", name, "1 row", "calls", len(values))
        results.add("serving", name, "1 row", "ratio_to_module", median / base)
        print(
            f"  {name:36s} median {1e3 * median:7.3f} ms  p90 {1e3 * p90:7.3f} ms  "
            f"x{median / base:.2f} of the module's forward"
        )
    if session is not None:
        from mtlestimators.export import prepare_inputs

        (got,) = session.run(None, prepare_inputs(model, X))
        diff = float(np.abs(got - model.predict_proba(X)).max())
        results.add(
            "serving", "onnx vs predict_proba", f"n={len(X)}", "max_abs_diff", diff
        )
        print(f"  ONNX vs predict_proba over {len(X)} test rows: max |diff| {diff:.2e}")


def onnx_session(model, args, state):
    """An onnxruntime session of export_onnx(model), or None (reason printed)."""
    try:
        import onnxruntime as ort

        from mtlestimators.export import export_onnx
    except ImportError as exc:
        print(f"  ONNX skipped: {exc}")
        return None
    folder = Path(tempfile.mkdtemp(prefix="autotask_scale_"))
    start = time.perf_counter()
    path = export_onnx(model, folder / "autotask.onnx")
    state["export_s"] = time.perf_counter() - start
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# ------------------------------------------------------------------ report


def _f(value, digits=2):
    return "-" if value is None or not np.isfinite(value) else f"{value:,.{digits}f}"


def _range(row, digits=2):
    if row is None or not np.isfinite(row["median"]):
        return "-"
    text = f"{row['median']:,.{digits}f}"
    if row["low"] != row["high"]:
        text += f" [{row['low']:,.{digits}f}, {row['high']:,.{digits}f}]"
    return text


def width_table(results, cfg):
    r = results
    out = [
        "| d | arm | e2 | parameters | fit s | fit CPU s | epoch us/row | peak MiB "
        "(rise) | one-row ms | status |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for d in cfg.widths:
        s = f"d={d}"
        for arm in ARMS:
            if r.get("width", arm, s, "params") is None:
                continue
            fit = r.get("width", arm, s, "fit_s")
            out.append(
                f"| {d:,} | {ARM_LABELS[arm]} | {r.value('width', arm, s, 'e2'):.0f} | "
                f"{r.value('width', arm, s, 'params'):,.0f} | {_range(fit)} | "
                f"{_range(r.get('width', arm, s, 'fit_cpu_s'))} | "
                f"{_range(r.get('width', arm, s, 'epoch_us_per_row'), 0)} | "
                f"{_range(r.get('width', arm, s, 'peak_mib'), 0)} | "
                f"{_range(r.get('width', arm, s, 'latency_ms'))} | {fit['status']} |"
            )
    return out


def width_growth(results, cfg):
    """Growth exponents of the defaults between consecutive widths."""
    lines = []
    widths = list(cfg.widths)
    for arm in ARMS:
        for a, b in zip(widths[:-1], widths[1:]):
            t = growth_exponent(
                results, "width", arm, "epoch_us_per_row", f"d={a}", f"d={b}", a, b
            )
            m = growth_exponent(
                results, "width", arm, "peak_mib", f"d={a}", f"d={b}", a, b
            )
            p = growth_exponent(
                results, "width", arm, "params", f"d={a}", f"d={b}", a, b
            )
            if np.isfinite(t) or np.isfinite(p):
                results.add("width_growth", arm, f"d={a}->{b}", "time_exponent", t)
                results.add("width_growth", arm, f"d={a}->{b}", "memory_exponent", m)
                results.add("width_growth", arm, f"d={a}->{b}", "params_exponent", p)
                lines.append(
                    f"| {ARM_LABELS[arm]} | {a:,} -> {b:,} | {_f(t)} | {_f(m)} "
                    f"| {_f(p)} |"
                )
    return lines


def report(results, cfg, args, state, meta):
    r = results
    lines = [
        "# AutoTask at width and scale (issue 14)",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Machine: {meta['machine']}; {meta['library']}; run took "
        f"{meta['total_s'] / 60:.1f} min; load "
        f"average (1, 5, 15 min) at start {meta['load_start']}, at end "
        f"{meta['load_end']} (the machine is shared with other jobs, so wall "
        "times carry noise).",
        "",
        "## Goals (issue 14) and whether they were met",
        "",
    ]
    growth = width_growth(results, cfg)
    goals = []
    if r.get("width", "defaults", f"d={cfg.widths[-1]}", "params") is not None:
        pairs = [
            x
            for x in r.rows
            if x["section"] == "width_growth" and x["variant"] == "defaults"
        ]
        t_exp = [x["median"] for x in pairs if x["metric"] == "time_exponent"]
        m_exp = [x["median"] for x in pairs if x["metric"] == "memory_exponent"]
        ok = all(np.isfinite(v) and v <= 1.2 for v in t_exp + m_exp) and t_exp
        goals.append(
            "1. *Time and memory grow linearly in d at the defaults* (d = "
            f"{', '.join(f'{d:,}' for d in cfg.widths)}): growth exponents "
            "(log ratio of the figure over log ratio of d; 1 = linear, 2 = "
            f"quadratic) of epoch time per row {', '.join(_f(v) for v in t_exp)} "
            f"and of peak memory {', '.join(_f(v) for v in m_exp)} between "
            f"consecutive widths: **{'met' if ok else 'not met'}** "
            "(threshold: every exponent <= 1.2)."
        )
    ratio = next(
        (
            x
            for x in r.rows
            if x["section"] == "throughput" and x["metric"] == "time_ratio"
        ),
        None,
    )
    if ratio is not None:
        goals.append(
            "2. *AutoTask's fit is at most 3x MultiTaskDNN's on the same data and "
            f"epochs at the defaults*: ratio {_range(ratio)} (median [range] over "
            f"{cfg.repeats} interleaved pairs): "
            f"**{'met' if ratio['median'] <= 3 else 'not met'}**."
        )
    counts = list(cfg.task_counts)
    first, last = f"N={counts[0]}", f"N={counts[-1]}"
    if r.get("tasks", "defaults", last, "epoch_us_per_row") is not None:
        t_ratio = r.value("tasks", "defaults", last, "epoch_us_per_row") / r.value(
            "tasks", "defaults", first, "epoch_us_per_row"
        )
        m_first = r.value("tasks", "defaults", first, "peak_mib")
        m_last = r.value("tasks", "defaults", last, "peak_mib")
        tables = r.value("tasks", "defaults", last, "table_params") - r.value(
            "tasks", "defaults", first, "table_params"
        )
        table_mib = tables * TRAIN_BYTES_PER_PARAM / 2**20
        ok = t_ratio <= 1.25 and (m_last - m_first) <= table_mib + 0.25 * m_first
        goals.append(
            f"3. *With up to 1,000 task ids, cost and memory do not grow with N "
            f"beyond the embedding table* ({', '.join(map(str, counts))} tasks): "
            f"epoch time per row at N = {counts[-1]:,} is {t_ratio:.2f}x N = "
            f"{counts[0]}; peak memory {m_first:.0f} -> {m_last:.0f} MiB, while "
            f"the task tables grow by {tables:,.0f} weights ({table_mib:.1f} MiB "
            f"with gradients and Adam): **{'met' if ok else 'not met'}** "
            "(thresholds: time ratio <= 1.25, memory rise <= the tables' "
            "training state + 25 %)."
        )
    df = r.get("serving", "predict_proba(DataFrame row)", "1 row", "ratio_to_module")
    if df is not None:
        arr = r.value("serving", "predict_proba(numpy row)", "1 row", "ratio_to_module")
        diff = next(
            (x["median"] for x in r.rows if x["metric"] == "max_abs_diff"), None
        )
        ok = df["median"] <= 1.5
        text = (
            "4. *One-row predict_proba at most 1.5x the raw module's forward on the "
            f"same row*: {df['median']:.2f}x for a DataFrame row, {arr:.2f}x for a "
            f"numpy row: **{'met' if ok else 'not met'}**"
        )
        if diff is not None:
            text += (
                f"; *ONNX parity is kept*: max |ONNX - predict_proba| = {diff:.1e} "
                f"over the test rows: **{'met' if diff <= 1e-5 else 'not met'}** "
                "(tolerance 1e-5, as in the tests)"
            )
        goals.append(text + ".")
    lines += goals or ["(no section run)"]
    if r.get("width", "defaults", f"d={cfg.widths[0]}", "params") is not None:
        lines += [
            "",
            "## 1. Width: cost at d feature columns",
            "",
            f"Synthetic data: {cfg.width_rows:,} training rows, d standard-normal "
            f"features + a task column ({cfg.width_tasks} tasks; d + 1 tokens with "
            "the task number), label x0 +- x1 > 0 by task parity, 1 epoch, "
            "batch 256. One fresh subprocess per fit, every (d, arm) once per "
            f"round over {cfg.repeats} rounds: median [range]; fit CPU s is the "
            "process CPU time of the fit (less sensitive than wall time to other "
            "jobs on the machine); peak memory is the rise of "
            "the resident set's peak (VmHWM, reset after imports and a tiny "
            "warm-up fit) during fit; epoch time is skorch's `dur`; one-row "
            f"latency is the median of {cfg.latency_calls} `predict_proba` calls "
            f"on a numpy row; timeout {args.timeout or cfg.timeout:.0f} s per fit "
            f"(the subprocess gets {PROBE_ALLOWANCE} s more for imports, warm-up "
            "and latency); "
            f"an arm whose weights, gradients and Adam state (16 bytes a weight) "
            f"exceed {args.memory_budget_gb:g} GB is not run (its parameters "
            "counted on the meta device).",
            "",
        ]
        lines += width_table(results, cfg)
        if growth:
            lines += [
                "",
                "Growth exponents between consecutive widths (1 = linear in d, "
                "2 = quadratic):",
                "",
                "| arm | d | epoch time per row | peak memory | parameters |",
                "| --- | --- | ---: | ---: | ---: |",
                *growth,
            ]
    if ratio is not None:
        setting = ratio["setting"]
        lines += [
            "",
            "## 2. Training throughput on Adult: AutoTask vs MultiTaskDNN",
            "",
            f"`load_adult_scenarios()` training split ({setting}), both at their "
            "defaults except `max_epochs=3, verbose=0` (`train_split=None`: every "
            "row trains, no validation pass), fits interleaved A, B, A, B, ...; "
            "per-pair time ratio.",
            "",
            "| model | fit s per repeat | median fit s | rows/s | CPU s |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        for name in ("AutoTask", "MultiTaskDNN"):
            each = [
                x["median"]
                for x in r.rows
                if x["section"] == "throughput"
                and x["variant"] == name
                and x["metric"].startswith("fit_s_repeat")
            ]
            lines.append(
                f"| {name} | {', '.join(f'{v:.2f}' for v in each)} | "
                f"{_range(r.get('throughput', name, setting, 'fit_s'))} | "
                f"{r.value('throughput', name, setting, 'rows_per_s'):,.0f} | "
                f"{r.value('throughput', name, setting, 'cpu_s'):.2f} |"
            )
        cpu = r.get("throughput", "AutoTask/MultiTaskDNN", setting, "cpu_ratio")
        lines += [
            "",
            f"AutoTask / MultiTaskDNN: wall time {_range(ratio)}, CPU time "
            f"{_range(cpu)} (median [range]).",
        ]
        prof = [
            x
            for x in r.rows
            if x["section"] == "profile" and x["metric"] == "self_cpu_share"
        ]
        if prof:
            pset = prof[0]["setting"]
            lines += [
                "",
                "### Where an AutoTask epoch's time goes (torch.profiler)",
                "",
                f"One default epoch on the same data ({pset}): fit "
                f"{r.value('profile', 'AutoTask', pset, 'fit_s_unprofiled'):.2f} s "
                "unprofiled, "
                f"{r.value('profile', 'AutoTask', pset, 'fit_s_profiled'):.2f} s "
                "profiled. Self CPU time inside the epoch, by the part of the "
                "model whose forward range (module hooks) holds an operator; a "
                "backward operator goes to the part whose forward operator has "
                "its autograd sequence number (a validation pass, with a "
                "`train_split`, would show as `[validation]` rows). skorch calls "
                "`optimizer.step(closure)` with forward and backward inside the "
                "closure; those go to their parts, the rest of the step (the Adam "
                "update, `zero_grad`, the train step's own operators) to the "
                "optimizer row.",
                "",
                "| part | self CPU ms | share |",
                "| --- | ---: | ---: |",
            ]
            for x in sorted(prof, key=lambda x: -x["median"]):
                ms = r.value("profile", x["variant"], pset, "self_cpu_ms")
                lines.append(
                    f"| {x['variant']} | {ms:,.0f} | {100 * x['median']:.1f} % |"
                )
            ops = [
                x
                for x in r.rows
                if x["section"] == "profile_ops" and x["metric"] == "self_cpu_ms"
            ]
            lines += [
                "",
                "Top operators by self CPU time (whole profiled fit):",
                "",
                "| operator | calls | self CPU ms | share |",
                "| --- | ---: | ---: | ---: |",
            ]
            for x in ops:
                calls = r.value("profile_ops", x["variant"], pset, "calls")
                share = r.value("profile_ops", x["variant"], pset, "self_cpu_share")
                lines.append(
                    f"| `{x['variant']}` | {calls:,.0f} | {x['median']:,.0f} | "
                    f"{100 * share:.1f} % |"
                )
    if (
        r.get("tasks", "defaults", first, "params") is not None
        or r.get("tasks", "defaults", first, "fit_s") is not None
    ):
        lines += [
            "",
            "## 3. Many scenarios: cost at N task ids",
            "",
            f"Synthetic data as in section 1 at d = {cfg.task_d}, "
            f"{cfg.task_rows:,} rows spread uniformly over N task ids, defaults, "
            "1 epoch, one fresh subprocess per fit, the task counts interleaved "
            f"over {cfg.repeats} rounds: median [range].",
            "",
            "| N | parameters | task tables (share) | fit s | epoch us/row | peak MiB "
            "(rise) | one-row ms | status |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for n in counts:
            s = f"N={n}"
            fit = r.get("tasks", "defaults", s, "fit_s")
            params = r.value("tasks", "defaults", s, "fitted_params")
            tables = r.value("tasks", "defaults", s, "table_params")
            lines.append(
                f"| {n:,} | {_f(params, 0)} | {_f(tables, 0)} "
                f"({_f(100 * tables / params, 1)} %) | {_range(fit)} | "
                f"{_range(r.get('tasks', 'defaults', s, 'epoch_us_per_row'), 1)} | "
                f"{_range(r.get('tasks', 'defaults', s, 'peak_mib'), 0)} | "
                f"{_range(r.get('tasks', 'defaults', s, 'latency_ms'))} | "
                f"{fit['status']} |"
            )
    if df is not None:
        calls = r.value("serving", "module forward", "1 row", "calls")
        lines += [
            "",
            "## 4. Serving: one-row latency on the Adult model",
            "",
            "The AutoTask model of section 2 (defaults, 3 epochs; fitted anew when "
            "section 2 is not run), one test row per call, cycling over the first "
            f"500 test rows; {calls:,.0f} calls per variant in 10 blocks, the "
            "order of the variants rotated each block. `module forward` is "
            "`model.net_.module_` under `torch.inference_mode()` on the tensors "
            "`_predict_inputs` makes of the row (prepared in advance); ONNX: "
            "`export_onnx(model, path)` in onnxruntime "
            f"({args.threads} intra-op thread(s)).",
            "",
            "| path | median ms | p90 ms | median / module forward |",
            "| --- | ---: | ---: | ---: |",
        ]
        for x in r.rows:
            if x["section"] == "serving" and x["metric"] == "median_ms":
                name = x["variant"]
                lines.append(
                    f"| {name} | {x['median']:.3f} | "
                    f"{r.value('serving', name, '1 row', 'p90_ms'):.3f} | "
                    f"{r.value('serving', name, '1 row', 'ratio_to_module'):.2f} |"
                )
        diff = next((x for x in r.rows if x["metric"] == "max_abs_diff"), None)
        if diff is not None:
            lines += [
                "",
                f"ONNX parity: max |onnxruntime - predict_proba| over the "
                f"{diff['setting'][2:]} test rows = {diff['median']:.2e} (export "
                f"took {state.get('export_s', float('nan')):.1f} s).",
            ]
    return "\n".join(lines) + "\n"


def figure(results, cfg, path):
    """Epoch time per row and peak memory against d, log-log, per arm."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    metrics = (
        ("epoch_us_per_row", "epoch time per row (us)"),
        ("peak_mib", "peak memory rise (MiB)"),
    )
    for ax, (metric, label) in zip(axes, metrics):
        for arm in ARMS:
            points = [
                (d, results.value("width", arm, f"d={d}", metric)) for d in cfg.widths
            ]
            points = [(d, v) for d, v in points if np.isfinite(v) and v > 0]
            if points:
                ax.plot(*zip(*points), marker="o", label=ARM_LABELS[arm])
        d = np.array(cfg.widths, dtype=float)
        base = results.value("width", "defaults", f"d={cfg.widths[1]}", metric)
        if np.isfinite(base):
            ax.plot(d, base * d / cfg.widths[1], "k:", lw=1, label="linear in d")
        ax.set(xscale="log", yscale="log", xlabel="d (feature columns)", ylabel=label)
        ax.set_xticks(list(cfg.widths), [f"{w:,}" for w in cfg.widths])
        ax.minorticks_off()
        ax.grid(True, which="both", alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8)
    fig.suptitle(f"AutoTaskClassifier: one epoch on {cfg.width_rows:,} rows")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_page(path, text):
    """Write ``text``, keeping what follows the notes mark of the old page."""
    notes = ""
    if path.exists():
        old = path.read_text()
        if NOTES_MARK in old:
            notes = old[old.index(NOTES_MARK) :]
    path.write_text(text + ("\n" + notes if notes else ""))


# -------------------------------------------------------------------- main


def _library():
    """Which mtlestimators this run imports (the package's folder)."""
    import mtlestimators

    return f"mtlestimators from {Path(mtlestimators.__file__).parent}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated, from {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds per fit (default 300)"
    )
    parser.add_argument(
        "--memory-budget-gb",
        type=float,
        default=6.0,
        help="run an arm only if its weights, gradients and Adam state fit",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="rounds of every section (default 3; --quick 1)",
    )
    parser.add_argument("--out-dir", type=Path, default=None)
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    torch.set_num_threads(args.threads)
    if args.probe:
        return probe(json.loads(args.probe))
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    cfg = SimpleNamespace(**vars(QUICK if args.quick else FULL))
    if args.repeats:
        cfg.repeats = args.repeats
    out_dir = args.out_dir or (
        Path(tempfile.gettempdir()) / "autotask_scale_quick" if args.quick else RESULTS
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": (
            f"PYTHONPATH={os.environ['PYTHONPATH']} "
            if os.environ.get("PYTHONPATH")
            else ""
        )
        + f"OMP_NUM_THREADS={args.threads} python "
        "benchmarks/autotask_scale.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}, Python {platform.python_version()}, "
        f"{args.threads} torch thread(s)",
        "load_start": tuple(round(x, 2) for x in os.getloadavg()),
        "library": _library(),
    }
    print(meta["machine"], "; load average", meta["load_start"])
    results, state = Results(), {}
    started = time.perf_counter()
    for section in SECTIONS:
        if section not in sections:
            continue
        t0 = time.perf_counter()
        if section == "width":
            section_width(cfg, args, results)
        elif section == "throughput":
            section_throughput(cfg, args, results, state)
        elif section == "tasks":
            section_tasks(cfg, args, results)
        else:
            section_serving(cfg, args, results, state)
        print(f"  [{section}: {time.perf_counter() - t0:.0f} s]")
    meta["total_s"] = time.perf_counter() - started
    meta["load_end"] = tuple(round(x, 2) for x in os.getloadavg())
    text = report(results, cfg, args, state, meta)
    print("\n" + text)
    with open(out_dir / "autotask_scale.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(results.rows[0]))
        writer.writeheader()
        writer.writerows(results.rows)
    write_page(out_dir / "autotask_scale.md", text)
    if "width" in sections:
        figure(results, cfg, out_dir / "autotask_scale.png")
    print(f"wrote {out_dir}/autotask_scale.{{csv,md}}; total {meta['total_s']:.0f} s")


if __name__ == "__main__":
    main()
