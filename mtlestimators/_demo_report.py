"""The demo's report: a Markdown page (and the same page as HTML) with its
tables and PNG figures.

The demo adds headings, paragraphs, tables and figures as it goes; a figure is
a function that draws on a matplotlib ``Figure`` from data the demo already
computed, so writing the report fits nothing. Without matplotlib the report is
written without its figures.
"""

from __future__ import annotations

import html
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

PLOTS_HINT = 'pip install "mtlestimators[demo]"'
_VERSIONED = (
    "mtlestimators",
    "torch",
    "skorch",
    "scikit-learn",
    "numpy",
    "pandas",
    "matplotlib",
)


def machine_rows() -> list[tuple[str, str]]:
    """The machine and the versions of the packages the demo runs on."""
    import torch

    rows = [
        ("date", time.strftime("%Y-%m-%d %H:%M:%S %Z")),
        ("platform", platform.platform()),
        ("processor", platform.processor() or platform.machine()),
        ("CPU cores", str(os.cpu_count())),
        ("torch threads", str(torch.get_num_threads())),
        ("CUDA", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no"),
        ("Python", sys.version.split()[0]),
    ]
    for name in _VERSIONED:
        try:
            rows.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            rows.append((name, "not installed"))
    return rows


class Report:
    """Blocks of a report page, rendered to Markdown and HTML by :meth:`write`."""

    def __init__(self, title: str):
        self.title = title
        self.blocks: list[tuple] = []

    def heading(self, text: str) -> None:
        self.blocks.append(("heading", text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def table(self, header, rows) -> None:
        self.blocks.append(("table", [str(h) for h in header], [list(r) for r in rows]))

    def figure(self, filename: str, caption: str, draw, size=(8.0, 4.5)) -> None:
        """``draw(fig)`` fills a matplotlib Figure of ``size`` inches, saved
        as ``filename`` (PNG) in the report folder."""
        self.blocks.append(("figure", filename, caption, draw, size))

    def write(self, directory, notes=()) -> tuple[Path, list[str], str | None]:
        """Write ``report.md``, ``report.html`` and the figures into
        ``directory`` (created if needed).

        Returns the path of ``report.md``, the figure files written and a
        note when figures were skipped (matplotlib missing), else None.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        try:
            import matplotlib  # noqa: F401  (first: a blocked package fails here)
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            FigureCanvasAgg = Figure = None
        skipped = None
        if Figure is None:
            skipped = f"Figures skipped: matplotlib is not installed ({PLOTS_HINT})."
        blocks, written = [], []
        for block in self.blocks:
            if block[0] != "figure":
                blocks.append(block)
                continue
            _, filename, caption, draw, size = block
            if Figure is None:
                continue
            fig = Figure(figsize=size, layout="constrained")
            FigureCanvasAgg(fig)
            draw(fig)
            fig.savefig(directory / filename, dpi=100)
            written.append(filename)
            blocks.append(("figure", filename, caption))
        notes = [*notes, *([skipped] if skipped else [])]
        if notes:
            blocks.insert(0, ("paragraph", " ".join(notes)))
        path = directory / "report.md"
        path.write_text(_markdown(self.title, blocks), encoding="utf-8")
        (directory / "report.html").write_text(
            _html(self.title, blocks), encoding="utf-8"
        )
        return path, written, skipped


def _markdown(title: str, blocks) -> str:
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    out = [f"# {title}", ""]
    for kind, *rest in blocks:
        if kind == "heading":
            out += [f"## {rest[0]}", ""]
        elif kind == "paragraph":
            out += [rest[0], ""]
        elif kind == "table":
            header, rows = rest
            out.append("| " + " | ".join(cell(h) for h in header) + " |")
            out.append("|" + "|".join(" --- " for _ in header) + "|")
            out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
            out.append("")
        else:
            filename, caption = rest
            alt = Path(filename).stem.replace("_", " ")
            out += [f"![{alt}]({filename})", "", f"*{caption}*", ""]
    return "\n".join(out)


def _html(title: str, blocks) -> str:
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;"
        "padding:0 1em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #bbb;padding:.3em .6em}"
        "td+td{text-align:right}img{max-width:100%}"
        "figcaption{font-style:italic}</style>",
        "</head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    for kind, *rest in blocks:
        if kind == "heading":
            out.append(f"<h2>{esc(rest[0])}</h2>")
        elif kind == "paragraph":
            out.append(f"<p>{esc(rest[0])}</p>")
        elif kind == "table":
            header, rows = rest
            out.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header))
            out += [
                "<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>"
                for row in rows
            ]
            out.append("</table>")
        else:
            filename, caption = rest
            out.append(
                f'<figure><img src="{esc(filename)}" alt="{esc(caption)}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# Figures: each takes the figure to draw on, then the demo's computed data.


def draw_roc_curves(fig, y_true, curves: dict, tasks) -> None:
    """ROC curve of every model, one panel per task; ``curves`` maps a model
    to its (n, K) probabilities and its per-task scores (for the legend)."""
    from sklearn.metrics import roc_curve

    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for k, (ax, task) in enumerate(zip(axes, tasks)):
        for name, (proba, scores) in curves.items():
            fpr, tpr, _ = roc_curve(y_true[:, k], proba[:, k])
            label = f"{name} (AUC {scores[task]['roc_auc']:.4f})"
            ax.plot(fpr, tpr, lw=1.4, label=label)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        ax.set(
            title=task,
            xlabel="false positive rate",
            ylabel="true positive rate",
            xlim=(0, 1),
            ylim=(0, 1.01),
            aspect="equal",
        )
        ax.legend(loc="lower right", fontsize="small")


def draw_field_masks(
    fig, masks, fields, tasks, cell_map=None, connections=None, n_tasks=None
) -> None:
    """Heatmap of MSSM's mean field mask, task x field; with ``cell_map`` (the
    estimator's ``cell_map_``, rows named by ``connections``, its
    ``cell_map_connections_``), the CSSM cell map beside it: which cells of
    each connection are closed."""
    if cell_map is None:
        ax = fig.subplots()
    else:
        ax, cells_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    image = ax.imshow(masks, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(fields)), fields, rotation=45, ha="right")
    ax.set_yticks(range(len(tasks)), tasks)
    for (i, j), value in _enumerate2d(masks):
        ax.text(
            j,
            i,
            f"{value:.2f}",
            ha="center",
            va="center",
            fontsize="x-small",
            color="white" if value < 0.6 else "black",
        )
    ax.set_title("field_masks_ (mean FSCM weight per task and field)")
    fig.colorbar(image, ax=ax, shrink=0.8)
    if cell_map is None:
        return
    n_tasks = len(tasks) if n_tasks is None else n_tasks
    labels = [
        f"{tasks[i]} <- " + ("own subnet" if j == i else f"shared {j - n_tasks + 1}")
        for i, j in connections
    ]
    cells_ax.imshow(1.0 - cell_map, vmin=0.0, vmax=1.0, cmap="Greys", aspect="auto")
    cells_ax.set_yticks(range(len(labels)), labels, fontsize="small")
    cells_ax.set_xlabel("cell of v_i (black: open, white: closed)")
    closed = float(cell_map.mean())
    cells_ax.set_title(f"cell_map_ (CSSM; {closed:.0%} of cells closed)")


def _enumerate2d(values):
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            yield (i, j), float(value)


def draw_grouped_bars(fig, scores: dict, ylabel: str, title: str) -> None:
    """Bars of ``scores[model][group]``, grouped by group, values on top."""
    import numpy as np

    ax = fig.subplots()
    models = list(scores)
    groups = list(scores[models[0]])
    width = 0.8 / len(models)
    lowest = min(min(s.values()) for s in scores.values())
    for m, model in enumerate(models):
        x = np.arange(len(groups)) + (m - (len(models) - 1) / 2) * width
        values = [scores[model][g] for g in groups]
        bars = ax.bar(x, values, width, label=model)
        ax.bar_label(bars, fmt="%.4f", fontsize="small", padding=2)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(max(0.0, np.floor((lowest - 0.05) * 20) / 20), 1.0)
    ax.set(ylabel=ylabel, title=title)
    ax.legend(loc="upper right", fontsize="small")


def draw_bars(fig, values: dict, ylabel: str, title: str) -> None:
    """One bar per entry of ``values`` (label: value), values on top."""
    ax = fig.subplots()
    bars = ax.bar(list(values), list(values.values()), color=["C0", "C1", "C7"])
    ax.bar_label(bars, fmt="%.4f", padding=2)
    ax.set_ylim(0, 1.05)
    ax.set(ylabel=ylabel, title=title)
    ax.tick_params(axis="x", labelsize="small")


def draw_embedding_map(fig, embeddings, colorings: dict, random_state=0) -> None:
    """2-D PCA of ``embeddings``, one panel per coloring ``{title: values}``."""
    from sklearn.decomposition import PCA

    points = PCA(n_components=2, random_state=random_state).fit_transform(embeddings)
    axes = fig.subplots(1, len(colorings), squeeze=False)[0]
    for ax, (title, values) in zip(axes, colorings.items()):
        if values.dtype == bool:
            for value, color in ((False, "C0"), (True, "C3")):
                rows = values == value
                label = "yes" if value else "no"
                ax.scatter(*points[rows].T, s=14, color=color, alpha=0.8, label=label)
            ax.legend(fontsize="small")
        else:
            scatter = ax.scatter(*points.T, c=values, s=14, cmap="viridis", alpha=0.85)
            fig.colorbar(scatter, ax=ax, shrink=0.8)
        ax.set(title=title, xlabel="PC 1", ylabel="PC 2")
