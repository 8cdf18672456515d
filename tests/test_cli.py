"""The ``mtlestimators`` command."""

import subprocess
import sys

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
