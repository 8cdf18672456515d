"""The ``mtlestimators`` command.

``mtlestimators plugins`` lists every discovered loss weighter and gate with
the distribution that provides it and its version; ``mtlestimators demo``
runs the main job (:mod:`mtlestimators.demo`).
"""

from __future__ import annotations

import argparse
import sys
import warnings

from .plugins import GATES_GROUP, LOSS_WEIGHTERS_GROUP, PluginWarning, list_plugins

_KIND = {LOSS_WEIGHTERS_GROUP: "loss weighter", GATES_GROUP: "gate"}


def plugins_table() -> str:
    """The discovered plugins as an aligned text table."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PluginWarning)
        rows = [
            (_KIND.get(p.group, p.group), p.name, p.distribution, p.version, p.value)
            for p in list_plugins()
        ]
    header = ("kind", "name", "distribution", "version", "target")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    lines = [
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip()
        for row in [header, *rows]
    ]
    lines += [f"warning: {w.message}" for w in caught]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="mtlestimators",
        description="Multi-task learning estimators for scikit-learn.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("plugins", help="list the loss weighters and gates found")
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
        print(plugins_table())
        return 0
    from .demo import main as demo_main

    demo_main(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
