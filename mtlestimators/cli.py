"""The ``mtlestimators`` command.

``mtlestimators plugins`` lists every discovered loss weighter and gate with
the distribution that provides it and its version; when one fails to import,
a ``status`` column shows each plugin as ``ok`` or ``broken: <error>`` and the
command exits with status 1. ``mtlestimators demo`` runs the main job
(:mod:`mtlestimators.demo`); ``mtlestimators --version`` prints the version.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from . import __version__
from .plugins import GATES_GROUP, LOSS_WEIGHTERS_GROUP, PluginWarning, list_plugins

_KIND = {LOSS_WEIGHTERS_GROUP: "loss weighter", GATES_GROUP: "gate"}


def _plugins_report() -> tuple[str, bool]:
    """The plugins table and whether any plugin is broken."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PluginWarning)
        plugins = list_plugins()
    broken = any(p.broken for p in plugins)
    header = ("kind", "name", "distribution", "version", "target")
    rows = [
        (_KIND.get(p.group, p.group), p.name, p.distribution, p.version, p.value)
        for p in plugins
    ]
    if broken:  # the status column is shown when it has something to say
        header += ("status",)
        rows = [(*row, p.status) for row, p in zip(rows, plugins)]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip()
        for row in [header, *rows]
    ]
    lines += [f"warning: {w.message}" for w in caught]
    return "\n".join(lines), broken


def plugins_table() -> str:
    """The discovered plugins as an aligned text table.

    The columns are kind, name, distribution, version and target; when a
    plugin fails to import, a ``status`` column follows (``ok``, or
    ``broken: `` and the import error). Warnings about plugins of the same
    name follow the table.

    Returns
    -------
    str
    """
    return _plugins_report()[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="mtlestimators",
        description="Multi-task learning estimators for scikit-learn.",
    )
    parser.add_argument(
        "--version", action="version", version=f"mtlestimators {__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "plugins",
        help="list the loss weighters and gates found (exit status 1 if one "
        "fails to import)",
    )
    # The demo parses its own options (--quick, --verbose, --report, --help).
    commands.add_parser(
        "demo",
        help="fit the library's models on bundled data and print scores",
        add_help=False,
    )
    args, rest = parser.parse_known_args(argv)
    if args.command == "plugins":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        table, broken = _plugins_report()
        print(table)
        return 1 if broken else 0
    from .demo import main as demo_main

    demo_main(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
