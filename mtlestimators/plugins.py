"""Plugin registry for loss weighters and gates.

Plugins are found through two entry-point groups,
``mtlestimators.loss_weighters`` and ``mtlestimators.gates``. The library's
own weighters and gates are registered by its ``pyproject.toml`` exactly like a
third-party distribution's, so both are found the same way.

Entry points are listed without importing them; a plugin is imported when it
is asked for. A plugin that fails to import is reported with the name of the
distribution that provides it and skipped: it never breaks the others.
"""

from __future__ import annotations

import copy
import inspect
import os
import sys
import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from torch import nn

__all__ = [
    "LOSS_WEIGHTERS_GROUP",
    "GATES_GROUP",
    "PluginInfo",
    "PluginWarning",
    "available_loss_weighters",
    "available_gates",
    "get_loss_weighter",
    "get_gate",
    "list_plugins",
    "build_loss_weighter",
    "build_gate",
]

LOSS_WEIGHTERS_GROUP = "mtlestimators.loss_weighters"
GATES_GROUP = "mtlestimators.gates"


class PluginWarning(UserWarning):
    """A plugin could not be loaded or is shadowed by another of the same name."""


@dataclass(frozen=True)
class PluginInfo:
    """One discovered plugin: its name, group, target and distribution.

    Parameters
    ----------
    name : str
        The entry point's name, the one estimators take (``"uniform"``).
    group : str
        The entry-point group, ``LOSS_WEIGHTERS_GROUP`` or ``GATES_GROUP``.
    value : str
        The entry point's target, ``"module:attribute"``.
    distribution : str
        The name of the distribution that registers it.
    version : str
        That distribution's version ("" when unknown).
    """

    name: str
    group: str
    value: str
    distribution: str
    version: str


def _distribution_of(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "<unknown distribution>", ""
    return dist.metadata["Name"], dist.version


# Scanning every installed distribution's metadata takes tens of milliseconds,
# and a fit looks up its weighter and each gate by name, so the scan is cached.
# The cache key is sys.path with the modification time of each of its
# folders: installing or removing a distribution (a new .dist-info folder, a
# new path entry) changes it, so new plugins are found without a restart.
_SCAN_CACHE: dict[str, tuple[tuple, list[EntryPoint]]] = {}


def _path_state() -> tuple:
    state = []
    for entry in sys.path:
        try:
            state.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            state.append((entry, None))
    return tuple(state)


def _scan(group: str) -> list[EntryPoint]:
    key = _path_state()
    cached = _SCAN_CACHE.get(group)
    if cached is not None and cached[0] == key:
        return cached[1]
    eps = sorted(entry_points(group=group), key=lambda e: (e.name, e.value))
    _SCAN_CACHE[group] = (key, eps)
    return eps


def _find(group: str) -> dict[str, EntryPoint]:
    """Entry points of ``group`` by name, sorted, without importing them."""
    found: dict[str, EntryPoint] = {}
    eps = _scan(group)
    for ep in eps:
        if ep.name in found:
            kept = found[ep.name]
            warnings.warn(
                f"Two plugins are named {ep.name!r} in {group}: "
                f"{kept.value} (from {_distribution_of(kept)[0]}) is used and "
                f"{ep.value} (from {_distribution_of(ep)[0]}) is ignored.",
                PluginWarning,
                stacklevel=3,
            )
            continue
        found[ep.name] = ep
    return found


def _load(ep: EntryPoint, group: str):
    try:
        return ep.load()
    except Exception as exc:  # a broken plugin must not break the others
        dist, version = _distribution_of(ep)
        raise ImportError(
            f"Plugin {ep.name!r} ({group}) from distribution {dist} {version} "
            f"failed to import {ep.value}: {type(exc).__name__}: {exc}. "
            f"Reinstall or uninstall {dist}."
        ) from exc


def _available(group: str) -> list[str]:
    names = []
    for name, ep in _find(group).items():
        try:
            _load(ep, group)
        except ImportError as exc:
            warnings.warn(f"Skipped: {exc}", PluginWarning, stacklevel=3)
            continue
        names.append(name)
    return names


def _get(group: str, name: str, kind: str):
    if not isinstance(name, str):
        raise TypeError(f"A {kind} name must be a string, got {name!r}.")
    found = _find(group)
    if name not in found:
        available = ", ".join(repr(n) for n in _available(group)) or "none"
        raise ValueError(
            f"Unknown {kind} {name!r}. Available {kind}s: {available}. "
            f"Install a plugin that registers it under the entry-point group "
            f"{group!r}, or pass a class or an instance."
        )
    return _load(found[name], group)


def available_loss_weighters() -> list[str]:
    """Sorted names of the loss weighters that import cleanly."""
    return _available(LOSS_WEIGHTERS_GROUP)


def available_gates() -> list[str]:
    """Sorted names of the gates that import cleanly."""
    return _available(GATES_GROUP)


def get_loss_weighter(name: str) -> type[nn.Module]:
    """The loss weighter class registered as ``name``.

    Parameters
    ----------
    name : str
        A name from :func:`available_loss_weighters`.

    Returns
    -------
    type
        The class, imported on this call.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If no plugin is registered as ``name``.
    ImportError
        If the plugin fails to import.
    """
    return _get(LOSS_WEIGHTERS_GROUP, name, "loss weighter")


def get_gate(name: str) -> type[nn.Module]:
    """The gate class registered as ``name``.

    Parameters
    ----------
    name : str
        A name from :func:`available_gates`.

    Returns
    -------
    type
        The class, imported on this call.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If no plugin is registered as ``name``.
    ImportError
        If the plugin fails to import.
    """
    return _get(GATES_GROUP, name, "gate")


def list_plugins() -> list[PluginInfo]:
    """Every discovered weighter and gate with its distribution and version."""
    out = []
    for group in (LOSS_WEIGHTERS_GROUP, GATES_GROUP):
        for name, ep in _find(group).items():
            dist, version = _distribution_of(ep)
            out.append(PluginInfo(name, group, ep.value, dist, version))
    return out


def _build(spec, args: tuple, params: dict, *, argument: str, group: str, kind: str):
    if isinstance(spec, nn.Module):
        if params:
            raise ValueError(
                f"{argument} is an instance, so {argument}__* parameters "
                f"({sorted(params)}) cannot be applied; pass the class or the "
                "registered name instead."
            )
        # A copy, so that fitting never mutates the user's object.
        return copy.deepcopy(spec)
    if isinstance(spec, str):
        cls = _get(group, spec, kind)
    elif isinstance(spec, type) and issubclass(spec, nn.Module):
        cls = spec
    else:
        raise TypeError(
            f"{argument} must be a registered name, an nn.Module subclass or an "
            f"nn.Module instance; got {spec!r}."
        )
    try:
        signature = inspect.signature(cls)
        signature.bind(*args, **params)
    except TypeError:
        accepted = [
            p
            for p in inspect.signature(cls).parameters
            if p not in ("self", "n_tasks", "n_inputs", "n_outputs")
        ]
        raise ValueError(
            f"{cls.__name__} does not accept the parameters "
            f"{sorted(f'{argument}__{p}' for p in params)}; it accepts "
            f"{[f'{argument}__{p}' for p in accepted]}."
        ) from None
    return cls(*args, **params)


def build_loss_weighter(spec, n_tasks: int, **params) -> nn.Module:
    """Build a loss weighter from a name, class or instance (copied).

    Parameters
    ----------
    spec : str, nn.Module subclass or nn.Module instance
        A registered name, a class (called as ``spec(n_tasks, **params)``),
        or an instance, returned as a deep copy.
    n_tasks : int
        Number of tasks; an instance must have been built for as many.
    **params
        Keyword arguments of the class (the estimators' ``loss_weighter__*``
        parameters); refused with an instance.

    Returns
    -------
    nn.Module
    """
    weighter = _build(
        spec,
        (n_tasks,),
        params,
        argument="loss_weighter",
        group=LOSS_WEIGHTERS_GROUP,
        kind="loss weighter",
    )
    n = getattr(weighter, "n_tasks", n_tasks)
    if n != n_tasks:
        raise ValueError(
            f"The loss_weighter instance was built for {n} tasks but y has "
            f"{n_tasks}; build it with n_tasks={n_tasks} or pass its class."
        )
    return weighter


def build_gate(spec, n_inputs: int, n_outputs: int, **params) -> nn.Module:
    """Build a gate from a name, class or instance (copied).

    Parameters
    ----------
    spec : str, nn.Module subclass or nn.Module instance
        A registered name, a class (called as
        ``spec(n_inputs, n_outputs, **params)``), or an instance, returned as
        a deep copy.
    n_inputs : int
        Width of the input the gate reads.
    n_outputs : int
        Number of gate values it returns.
    **params
        Keyword arguments of the class (the estimators' ``gate__*``
        parameters); refused with an instance.

    Returns
    -------
    nn.Module
    """
    return _build(
        spec,
        (n_inputs, n_outputs),
        params,
        argument="gate",
        group=GATES_GROUP,
        kind="gate",
    )
