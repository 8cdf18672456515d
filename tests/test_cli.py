"""The ``mtlestimators`` command."""

import subprocess
import sys

import pytest

from mtlestimators.cli import main, plugins_table


def test_plugins_lists_every_weighter_and_gate_with_its_distribution(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["kind", "name", "distribution", "version", "target"]
    for name in ("uniform", "pseudo_uniform", "uncertainty", "dwa", "rlw"):
        assert any(
            line.startswith("loss weighter") and f" {name} " in line for line in lines
        ), name
    for name in ("hard_concrete", "softmax"):
        assert any(line.startswith("gate") and f" {name} " in line for line in lines)
    assert all("mtlestimators" in line for line in lines[1:] if line)


def test_module_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "mtlestimators.cli", "plugins"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == plugins_table().strip()


def test_demo_options_reach_the_demo(monkeypatch):
    import mtlestimators.demo

    seen = []
    monkeypatch.setattr(mtlestimators.demo, "main", seen.append)
    assert main(["demo", "--quick", "--verbose", "0"]) == 0
    assert seen == [["--quick", "--verbose", "0"]]


def test_demo_report_options_reach_run(monkeypatch):
    import mtlestimators.demo as demo

    calls = []
    monkeypatch.setattr(demo, "run", lambda **kwargs: calls.append(kwargs))
    main(["demo", "--verbose", "0"])
    main(["demo", "--no-report"])
    main(["demo", "--quick", "--report", "elsewhere"])
    assert [c["report"] for c in calls] == ["demo-report", None, "elsewhere"]
    assert [c["max_epochs"] for c in calls] == [10, 10, 5]
    assert calls[0]["verbose"] == 0


def _smoke_demo(report_dir):
    """The CLI's demo at its hidden test size; returns (run's scores, stdout)."""
    import contextlib
    import io

    import mtlestimators.demo as demo

    returned, out = [], io.StringIO()
    real_run = demo.run
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo, "run", lambda **kw: returned.append(real_run(**kw)))
        with contextlib.redirect_stdout(out):
            main(["demo", "--smoke", "--verbose", "0", "--report", str(report_dir)])
    return returned[0], out.getvalue()


def _markdown_tables(text):
    """{first header cell + second header cell: {first cell: row cells}}."""
    tables, header = {}, None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if header is None:
            header = " / ".join(cells[:2])
            tables[header] = {}
        elif set(cells[0]) != {"-"}:
            tables[header][cells[0]] = cells[1:]
    return tables


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    report_dir = tmp_path_factory.mktemp("report") / "demo-report"
    results, out = _smoke_demo(report_dir)
    return results, out, report_dir


def test_demo_writes_a_report_with_its_figures(smoke_report):
    import re

    import torch

    pytest.importorskip("matplotlib")  # in the test extras
    results, out, report_dir = smoke_report
    text = (report_dir / "report.md").read_text()
    html = (report_dir / "report.html").read_text()
    assert f"Report: {report_dir / 'report.md'}" in out
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert set(images) == {
        "adult_roc.png",
        "mssm_field_masks.png",
        "scenarios_auc.png",
        "gallery_probe.png",
        "gallery_embeddings.png",
    }
    for name in images:
        data = (report_dir / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000, name
        assert f'src="{name}"' in html
    assert sorted(p.name for p in report_dir.glob("*.png")) == sorted(images)
    machine = _markdown_tables(text)["item / value"]
    assert machine["torch"] == [torch.__version__.split("+")[0]]
    assert machine["CPU cores"][0].isdigit()
    assert "pip install" not in text


def test_demo_report_scores_equal_the_returned_and_printed_ones(smoke_report):
    results, out, report_dir = smoke_report
    tables = _markdown_tables((report_dir / "report.md").read_text())
    printed = {
        line.split("  ")[0].strip(): line for line in out.splitlines() if "  " in line
    }

    def check(table, name, row_label, expected):
        assert tables[table][row_label][: len(expected)] == expected, row_label
        assert all(cell in printed[row_label] for cell in expected), row_label
        assert name in results

    adult = {
        "MSSMClassifier (raw fields)": "MSSMClassifier (raw fields)",
        "SharedBottomClassifier (raw fields)": "SharedBottomClassifier (raw fields)",
        "LogisticRegression per task": "LogisticRegression (one per task)",
    }
    for name, label in adult.items():
        expected = [
            f"{results[name][t]['roc_auc']:.4f} / {results[name][t]['pr_auc']:.4f}"
            for t in ("income", "never_married")
        ]
        check("model / income", name, label, expected)
    for name in ("AutoTaskClassifier", "MultiTaskDNNClassifier (general)"):
        expected = [f"{auc:.4f}" for auc in results[name].values()]
        assert len(expected) == 3
        check("model / seen occupations", name, name, expected)
    probes = {
        "GalleryEmbedder probe": "linear probe on GalleryEmbedder embeddings",
        "mean-image probe": "linear probe on the mean image of each gallery",
    }
    for name, label in probes.items():
        expected = [f"{results[name]['mostly_even_accuracy']:.4f}"]
        check("model / mostly_even accuracy", name, label, expected)
    # Every model's fit time is reported as printed.
    for label in [*adult.values(), "AutoTaskClassifier"]:
        seconds = tables["model / income"].get(label) or tables[
            "model / seen occupations"
        ].get(label)
        assert printed[label].split()[-1] == seconds[-1]


def test_demo_without_matplotlib_writes_a_report_without_figures(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m.split(".")[0] == "matplotlib"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    report_dir = tmp_path / "report"
    results, out = _smoke_demo(report_dir)
    text = (report_dir / "report.md").read_text()
    assert 'pip install "mtlestimators[demo]"' in out
    assert 'pip install "mtlestimators[demo]"' in text
    assert "![" not in text and not list(report_dir.glob("*.png"))
    assert "<img" not in (report_dir / "report.html").read_text()
    mssm = results["MSSMClassifier (raw fields)"]["income"]
    table = _markdown_tables(text)["model / income"]
    cell = f"{mssm['roc_auc']:.4f} / {mssm['pr_auc']:.4f}"
    assert table["MSSMClassifier (raw fields)"][0] == cell
