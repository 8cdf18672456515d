"""Plugin registry for loss weighters and gates.

Plugins are found through two entry-point groups,
``mtlestimators.loss_weighters`` and ``mtlestimators.gates``. The library's
own weighters and gates are registered by its ``pyproject.toml`` exactly like a
third-party distribution's, so both are found the same way.

Entry points are listed without importing them; a plugin is imported when it
is asked for (:func:`list_plugins` imports each one to report whether it
works). A plugin that fails to import is reported with the name of the
distribution that provides it and skipped: it never breaks the others.

When several distributions register the same name in a group, the one from
the ``mtlestimators`` distribution itself (a built-in) always wins; between
two other distributions the target first in sorted order wins. Either way a
:class:`PluginWarning` names the plugin that is ignored and its distribution.

A loss weighter's ``prepare``, ``epoch_end`` and ``combine_gradients`` and a
gate's ``penalty`` are optional: the library calls them through
:func:`call_hook` and :func:`gate_penalty`, which treat a missing one as a
no-op (a gate without ``penalty`` adds no sparsity term).
"""

from __future__ import annotations

import copy
import inspect
import os
import re
import sys
import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

import torch
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

# The distribution whose entry points are the built-ins: they cannot be
# shadowed by another distribution's plugin of the same name.
_BUILT_IN_DISTRIBUTION = "mtlestimators"


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
    status : str, default="ok"
        ``"ok"`` when the plugin imports, else ``"broken: "`` followed by the
        error its import raised.
    """

    name: str
    group: str
    value: str
    distribution: str
    version: str
    status: str = "ok"

    @property
    def broken(self) -> bool:
        """True when the plugin failed to import."""
        return self.status != "ok"


def _distribution_of(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "<unknown distribution>", ""
    return dist.metadata["Name"], dist.version


def _is_built_in(ep: EntryPoint) -> bool:
    name = _distribution_of(ep)[0]
    return re.sub(r"[-_.]+", "-", name).lower() == _BUILT_IN_DISTRIBUTION


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
    """Entry points of ``group`` by name, sorted, without importing them.

    For a name registered more than once, a built-in (an entry point of the
    ``mtlestimators`` distribution) wins over every other distribution's;
    otherwise the first in sorted order of the target wins. A PluginWarning
    names the one ignored and its distribution.
    """
    found: dict[str, EntryPoint] = {}
    for ep in _scan(group):
        kept = found.get(ep.name)
        if kept is None:
            found[ep.name] = ep
            continue
        if _is_built_in(ep) and not _is_built_in(kept):
            found[ep.name], kept, ep = ep, ep, kept
        ignored = _distribution_of(ep)[0]
        if _is_built_in(kept) and not _is_built_in(ep):
            message = (
                f"The plugin {ep.value} from distribution {ignored} is "
                f"registered as {ep.name!r} in {group}, a built-in name of "
                f"mtlestimators ({kept.value}): built-ins cannot be replaced, "
                f"so the built-in is used and {ignored}'s plugin is ignored. "
                f"{ignored} should register it under another name."
            )
        else:
            message = (
                f"Two plugins are named {ep.name!r} in {group}: "
                f"{kept.value} (from {_distribution_of(kept)[0]}) is used and "
                f"{ep.value} (from {ignored}) is ignored."
            )
        warnings.warn(message, PluginWarning, stacklevel=3)
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
    """Every discovered weighter and gate with its distribution, version and
    status.

    Each plugin is imported to tell whether it works: one that fails to
    import is listed with ``status`` ``"broken: <error>"`` (and
    ``broken`` True) instead of being skipped.

    Returns
    -------
    list of PluginInfo
        The loss weighters, then the gates, each group sorted by name.
    """
    out = []
    for group in (LOSS_WEIGHTERS_GROUP, GATES_GROUP):
        for name, ep in _find(group).items():
            dist, version = _distribution_of(ep)
            try:
                ep.load()
            except Exception as exc:  # reported, never raised
                status = f"broken: {type(exc).__name__}: {exc}"
            else:
                status = "ok"
            out.append(PluginInfo(name, group, ep.value, dist, version, status))
    return out


def call_hook(plugin, name: str, *args, **kwargs):
    """Call a plugin's optional hook ``name`` if it defines one.

    The library calls a loss weighter's ``prepare`` and ``epoch_end`` through
    this function, so a plain ``nn.Module`` without them works: a missing
    hook is a no-op.

    Parameters
    ----------
    plugin : nn.Module
        The loss weighter or gate.
    name : str
        The hook's name (``"prepare"``, ``"epoch_end"``).
    *args, **kwargs
        Passed to the hook.

    Returns
    -------
    object
        What the hook returns, or None when the plugin has no such hook.
    """
    hook = getattr(plugin, name, None)
    if hook is None:
        return None
    return hook(*args, **kwargs)


def gate_penalty(gate: nn.Module) -> torch.Tensor:
    """A gate's sparsity term: its ``penalty()``, or 0 if it defines none.

    Parameters
    ----------
    gate : nn.Module
        The gate.

    Returns
    -------
    Tensor
        A scalar, on the device of the gate's parameters (or buffers) when it
        has no ``penalty``.
    """
    penalty = getattr(gate, "penalty", None)
    if penalty is not None:
        return penalty()
    tensor = next(gate.parameters(), None)
    if tensor is None:
        tensor = next(gate.buffers(), None)
    return torch.zeros((), device="cpu" if tensor is None else tensor.device)


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
    gate = _build(
        spec,
        (n_inputs, n_outputs),
        params,
        argument="gate",
        group=GATES_GROUP,
        kind="gate",
    )
    # An optimizer's weight_decay leaves every gate's parameters alone
    # (decayed_parameters in _core/net.py), a plugin's as well as ours.
    gate.no_weight_decay = True
    return gate
