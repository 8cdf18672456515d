"""Declared parameter constraints, checked at the start of ``fit``.

An estimator class lists what each of its ``__init__`` parameters accepts::

    _parameter_constraints = {
        "max_epochs": [Integer(1)],
        "dropout": [Real(0, 1, closed="left")],
        "gate": [Plugin("gate")],
        "block_embed_dim": [Integer(1), Options(("auto", "paper"))],
    }

Each entry is a list of alternatives: a value is accepted when one of them
accepts it. An alternative is a constraint object below, ``None`` (the value
None) or a type (an instance of it). The dicts of a class and of its bases
are merged, so parameters shared by a family are declared once, on the base.

:func:`validate_params` raises for the first parameter no alternative
accepts, naming the parameter, the value received and what is accepted:
ValueError when the value is of a kind an alternative is about but out of
range (or not one of the options), TypeError otherwise.
"""

from __future__ import annotations

import inspect
import math
import numbers
import sys

import numpy as np


class Constraint:
    """One kind of accepted value; ``str()`` describes it ("a positive integer")."""

    def accepts(self, value) -> bool:
        raise NotImplementedError

    def claims(self, value) -> bool:
        """Whether ``value`` is of the kind this constraint is about, so that
        refusing it is a ValueError (a wrong value) rather than a TypeError."""
        return False


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(
        value, (bool, np.bool_)
    )


def _is_number(value) -> bool:
    return isinstance(value, numbers.Number)


class Integer(Constraint):
    """An int (not a bool) in ``[low, high]``; None leaves a side open."""

    def __init__(self, low=None, high=None):
        self.low, self.high = low, high

    def accepts(self, value) -> bool:
        return (
            _is_int(value)
            and (self.low is None or value >= self.low)
            and (self.high is None or value <= self.high)
        )

    def claims(self, value) -> bool:
        return _is_number(value)

    def __str__(self) -> str:
        if self.high is None:
            if self.low is None:
                return "an integer"
            return (
                "a positive integer" if self.low == 1 else f"an integer >= {self.low}"
            )
        if self.low is None:
            return f"an integer <= {self.high}"
        return f"an integer in [{self.low}, {self.high}]"


class Real(Constraint):
    """A real number (not a bool, not NaN) between ``low`` and ``high``;
    ``closed`` is "both", "left", "right" or "neither"."""

    def __init__(self, low=None, high=None, closed="both"):
        assert closed in ("both", "left", "right", "neither")
        self.low, self.high, self.closed = low, high, closed

    def accepts(self, value) -> bool:
        if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
            return False
        if math.isnan(value):
            return False
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and not (
            value >= self.low if left else value > self.low
        ):
            return False
        if self.high is not None and not (
            value <= self.high if right else value < self.high
        ):
            return False
        return True

    def claims(self, value) -> bool:
        return _is_number(value)

    def __str__(self) -> str:
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.high is None:
            if self.low is None:
                return "a real number"
            if self.low == 0 and not left:
                return "a positive number"
            return f"a real number {'>=' if left else '>'} {self.low}"
        if self.low is None:
            return f"a real number {'<=' if right else '<'} {self.high}"
        return (
            f"a number in {'[' if left else '('}{self.low}, "
            f"{self.high}{']' if right else ')'}"
        )


class Boolean(Constraint):
    """True or False (numpy's bool too)."""

    def accepts(self, value) -> bool:
        return isinstance(value, (bool, np.bool_))

    def __str__(self) -> str:
        return "a bool (True or False)"


class Options(Constraint):
    """One of the given values (compared with ``==``; a bool only matches a
    bool). Refusing a value is a ValueError saying ``name=value is unknown``."""

    def __init__(self, values, ignore_case: bool = False):
        self.values = tuple(values)
        self.ignore_case = ignore_case

    def _key(self, value):
        if self.ignore_case and isinstance(value, str):
            return value.lower()
        return value

    def accepts(self, value) -> bool:
        if isinstance(value, (np.ndarray, list, tuple, dict, set)) or hasattr(
            value, "__array__"
        ):
            return False  # compared elementwise, never one option
        key = self._key(value)
        is_bool = isinstance(value, (bool, np.bool_))
        return any(
            isinstance(option, (bool, np.bool_)) == is_bool and key == self._key(option)
            for option in self.values
        )

    def claims(self, value) -> bool:
        return True

    def __str__(self) -> str:
        return f"one of {list(self.values)!r}"


class Units(Constraint):
    """Layer widths: a tuple (or list) of positive ints, possibly empty."""

    def accepts(self, value) -> bool:
        return isinstance(value, (tuple, list)) and all(
            _is_int(u) and u > 0 for u in value
        )

    def claims(self, value) -> bool:
        return isinstance(value, (tuple, list))

    def __str__(self) -> str:
        return "a tuple of positive integers (layer widths)"


def _resolve(kind):
    """A type, or a dotted name such as ``"accelerate.Accelerator"`` looked up
    only among the modules already imported (no value can be an instance of
    a class whose module was never imported): the type or None."""
    if not isinstance(kind, str):
        return kind
    module, _, name = kind.rpartition(".")
    found = sys.modules.get(module)
    return getattr(found, name, None) if found is not None else None


def _type_name(kind) -> str:
    """``a str`` for a builtin, ``an os.PathLike`` (top-level package and
    name) for the others."""
    if isinstance(kind, str):
        name = kind
    elif kind.__module__ == "builtins":
        return f"a {kind.__name__}"
    else:
        name = f"{kind.__module__.split('.')[0]}.{kind.__qualname__}"
    return f"an {name}" if name[0].lower() in "aeiou" else f"a {name}"


class InstanceOf(Constraint):
    """An instance of one of ``types`` (types, or dotted names of optional
    dependencies); ``exclude`` refuses instances of other types (e.g. str
    among iterables)."""

    def __init__(self, types, exclude=(), description=None):
        self.types = types if isinstance(types, tuple) else (types,)
        self.exclude = exclude if isinstance(exclude, tuple) else (exclude,)
        self.description = description

    def accepts(self, value) -> bool:
        if self.exclude and isinstance(value, self.exclude):
            return False
        found = tuple(t for t in map(_resolve, self.types) if t is not None)
        return bool(found) and isinstance(value, found)

    def __str__(self) -> str:
        if self.description:
            return self.description
        return " or ".join(_type_name(t) for t in self.types)


class SubclassOf(Constraint):
    """A class that is ``base`` or a subclass of it."""

    def __init__(self, base, description=None):
        self.base = base
        self.description = description

    def accepts(self, value) -> bool:
        return isinstance(value, type) and issubclass(value, self.base)

    def __str__(self) -> str:
        return self.description or f"a {self.base.__name__} subclass"


class Callable(Constraint):
    """Any callable."""

    def accepts(self, value) -> bool:
        return callable(value)

    def __str__(self) -> str:
        return "a callable"


class HasMethods(Constraint):
    """An object with all of these methods (duck typing, e.g. an estimator)."""

    def __init__(self, *methods):
        self.methods = methods

    def accepts(self, value) -> bool:
        return all(callable(getattr(value, m, None)) for m in self.methods)

    def __str__(self) -> str:
        return f"an object with {' and '.join(m + '()' for m in self.methods)}"


class Plugin(Constraint):
    """A plugin: the name of a registered one, an nn.Module subclass or an
    nn.Module instance. ``kind`` is "gate" or "loss weighter"."""

    def __init__(self, kind: str):
        self.kind = kind

    def _lookup(self, name):
        from .. import plugins

        getter = {"gate": plugins.get_gate, "loss weighter": plugins.get_loss_weighter}
        return getter[self.kind](name)

    def accepts(self, value) -> bool:
        from torch import nn

        if isinstance(value, str):
            try:
                # A registered plugin that fails to import raises its own
                # ImportError here, which explains how to fix it.
                self._lookup(value)
            except ValueError:
                return False
            return True
        return isinstance(value, nn.Module) or (
            isinstance(value, type) and issubclass(value, nn.Module)
        )

    def claims(self, value) -> bool:
        return isinstance(value, str)

    def reason(self, value) -> str:
        """The registry's explanation for an unknown name."""
        try:
            self._lookup(value)
        except ValueError as exc:
            return str(exc)
        return ""  # pragma: no cover - only asked about refused names

    def __str__(self) -> str:
        return (
            f"a registered {self.kind} name, an nn.Module subclass or an "
            "nn.Module instance"
        )


def _alternative(spec) -> Constraint:
    if isinstance(spec, Constraint):
        return spec
    if spec is None:
        return _NONE
    if isinstance(spec, type):
        return InstanceOf(spec)
    raise TypeError(f"Not a parameter constraint: {spec!r}.")  # pragma: no cover


class _NoneConstraint(Constraint):
    def accepts(self, value) -> bool:
        return value is None

    def __str__(self) -> str:
        return "None"


_NONE = _NoneConstraint()


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " or " + parts[-1]


def parameter_constraints(cls) -> dict:
    """``_parameter_constraints`` of ``cls`` merged over its bases (a
    subclass's entry replaces its base's)."""
    merged = {}
    for klass in reversed(cls.__mro__):
        merged.update(vars(klass).get("_parameter_constraints", {}))
    return merged


def init_parameters(cls) -> list[str]:
    """Names of the explicit parameters of ``cls.__init__``."""
    signature = inspect.signature(cls.__init__)
    return [
        p.name
        for p in signature.parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]


def check_param(name: str, value, constraints) -> None:
    """Raise ValueError or TypeError unless one of ``constraints`` accepts
    ``value``; the message names ``name``, the value and what is accepted."""
    alternatives = [_alternative(c) for c in constraints]
    if any(c.accepts(value) for c in alternatives):
        return
    claimed = [c for c in alternatives if c.claims(value)]
    error = ValueError if claimed else TypeError
    plugin = next((c for c in claimed if isinstance(c, Plugin)), None)
    options = next((c for c in claimed if isinstance(c, Options)), None)
    if plugin is not None:
        message = f"{name}={value!r}: {plugin.reason(value)}"
    elif options is not None:
        others = [str(c) for c in alternatives if c is not options]
        accepted = _join([f"one of {list(options.values)!r}", *others])
        message = f"{name}={value!r} is unknown; use {accepted}."
    else:
        accepted = _join([str(c) for c in alternatives])
        message = f"{name} must be {accepted}, got {value!r}."
    raise error(message)


def validate_params(estimator) -> None:
    """Check every ``__init__`` parameter of ``estimator`` that its class
    declares in ``_parameter_constraints`` (see the module docstring)."""
    constraints = parameter_constraints(type(estimator))
    for name in init_parameters(type(estimator)):
        if name in constraints:
            check_param(name, getattr(estimator, name), constraints[name])
