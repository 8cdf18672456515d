"""Every public class and function has a numpydoc docstring.

The public objects are the classes and functions named in the ``__all__`` of
the package and of its public modules, and the public methods (defined in
mtlestimators, not inherited from scikit-learn, skorch or torch) of those
classes that take parameters besides ``self``/``cls``. Each needs a docstring
with a summary line and, where its signature has parameters, a ``Parameters``
section that documents exactly those parameters: a documented name that is
not a parameter fails, and so does a parameter left out. ``*args`` and
``**kwargs``-style parameters may be left out, and several names may share
one entry (``a, b, c : int``), also across lines.

Abstract bases (names ending in ``Base``, and the ``LossWeighter``, ``Gate``
and ``GradientWeighter`` plugin bases) need a class docstring but no
``Parameters`` section in it; their methods are checked like any other.

The sections are read by the small parser below, so the check does not need
numpydoc (which brings Sphinx with it) in the test environment. Where numpydoc
is installed (the ``docs`` extra), its parser reads them too, must agree with
this one and must not warn: the docs build (``sphinx-build -W``) would fail on
those warnings.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import warnings

import pytest

MODULES = [
    "mtlestimators",
    "mtlestimators.datasets",
    "mtlestimators.plugins",
    "mtlestimators.loss_weighters",
    "mtlestimators.gates",
    "mtlestimators.metrics",
    "mtlestimators.model_selection",
    "mtlestimators.export",
    "mtlestimators.utils",
    "mtlestimators.tabular",
    "mtlestimators.autotask",
    "mtlestimators.gallery",
]

# Abstract bases whose class docstring needs no Parameters section.
PLUGIN_BASES = {"LossWeighter", "Gate", "GradientWeighter"}

# The sections whose entries document parameters.
PARAMETER_SECTIONS = ("Parameters", "Other Parameters")


def _ours(obj) -> bool:
    return getattr(obj, "__module__", "").split(".")[0] == "mtlestimators"


def _public_methods(cls):
    """``(name, function)`` for the public methods ``cls`` gets from a class
    defined in mtlestimators, nearest definition first, whose signature has
    parameters besides ``self``/``cls``."""
    seen = set()
    for klass in cls.__mro__:
        for name, attr in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            if not _ours(klass):
                continue  # inherited from scikit-learn, skorch, torch, ...
            func = (
                attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr
            )
            if not inspect.isfunction(func):
                continue  # properties, attributes
            params = list(inspect.signature(func).parameters)
            if not isinstance(attr, staticmethod):
                params = params[1:]  # self or cls
            if params:
                yield name, func, klass


def _class_init(cls):
    """The ``__init__`` a class is built with when it is defined in
    mtlestimators (its own, a base's or a dataclass's), else None."""
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            init = vars(klass)["__init__"]
            if _ours(klass) and inspect.isfunction(init):
                return init
            return None
    return None


def collect():
    """``(qualified name, object, signature parameters or None, needs a
    Parameters section)`` for every public object, each object once."""
    found, seen = [], set()
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue  # constants, __version__
            if not _ours(obj) or id(obj) in seen:
                continue
            seen.add(id(obj))
            qualname = f"{module_name}.{name}"
            if inspect.isfunction(obj):
                found.append((qualname, obj, _params(obj), True))
                continue
            base = name.endswith("Base") or name in PLUGIN_BASES
            init = _class_init(obj)
            params = _params(init, skip_first=True) if init else []
            found.append((qualname, obj, params, not base))
            for method_name, func, klass in _public_methods(obj):
                if id(func) in seen:
                    continue  # documented once, where it is defined
                seen.add(id(func))
                skip = not isinstance(vars(klass)[method_name], staticmethod)
                found.append(
                    (
                        f"{func.__module__}.{func.__qualname__}",
                        func,
                        _params(func, skip_first=skip),
                        True,
                    )
                )
    return found


def _params(func, skip_first=False):
    """The signature's parameters as ``(name, kind)``."""
    params = [(p.name, p.kind) for p in inspect.signature(func).parameters.values()]
    return params[1:] if skip_first else params


def _sections(doc: str) -> dict[str, list[str]]:
    """The docstring's numpydoc sections: title -> lines (the summary and
    extended summary are under "")."""
    lines = inspect.cleandoc(doc).splitlines()
    sections, title, body = {}, "", []
    i = 0
    while i < len(lines):
        line = lines[i]
        underline = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if (
            line.strip()
            and not line.startswith(" ")
            and underline
            and set(underline) == {"-"}
            and len(underline) >= len(line.strip())
        ):
            sections[title] = body
            title, body = line.strip(), []
            i += 2
            continue
        body.append(line)
        i += 1
    sections[title] = body
    return sections


def _split_names(header: str) -> list[str]:
    """``"a, b : int"`` -> ``["a", "b"]``; ``"**kwargs"`` -> ``["kwargs"]``."""
    names = header.split(" : ")[0] if " : " in header else header
    return [n.strip().lstrip("*") for n in names.split(",") if n.strip()]


def documented_names(doc: str) -> list[str] | None:
    """Names in the Parameters sections, or None where there is none. An
    entry's names are its unindented lines up to the ``:``; its description is
    indented."""
    sections = _sections(doc)
    if not any(title in sections for title in PARAMETER_SECTIONS):
        return None
    names = []
    for title in PARAMETER_SECTIONS:
        for line in sections.get(title, []):
            if line.strip() and not line.startswith(" "):
                names.extend(_split_names(line))
    return names


def numpydoc_names(doc: str) -> tuple[list[str] | None, str, list[str]]:
    """Names in the Parameters sections, summary and complaints (warnings,
    errors), as numpydoc's parser reads them."""
    docscrape = pytest.importorskip("numpydoc.docscrape")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parsed = docscrape.NumpyDocString(inspect.cleandoc(doc))
        except Exception as exc:  # numpydoc raises on malformed sections
            return None, "", [f"{type(exc).__name__}: {exc}"]
    entries = [p for title in PARAMETER_SECTIONS for p in parsed[title]]
    names = [n for p in entries for n in _split_names(p.name)] if entries else None
    return names, " ".join(parsed["Summary"]), [str(w.message) for w in caught]


def problems(qualname, obj, params, needs_parameters, parse=documented_names):
    """What is wrong with ``obj``'s docstring, as a list of messages."""
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
    if not doc or not doc.strip():
        return [f"{qualname}: no docstring"]
    out = []
    first = inspect.cleandoc(doc).splitlines()[0].strip()
    if not first or set(first) == {"-"}:
        out.append(f"{qualname}: no summary line")
    optional = {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}
    required = [name for name, kind in params if kind not in optional]
    names = parse(doc)
    if names is None:
        if required and needs_parameters:
            out.append(f"{qualname}: no Parameters section (parameters {required})")
        return out
    allowed = {name for name, _ in params}
    unknown = [n for n in names if n not in allowed]
    missing = [n for n in required if n not in names]
    if unknown:
        out.append(f"{qualname}: documents {unknown}, which are not parameters")
    if missing:
        out.append(f"{qualname}: parameters {missing} are not documented")
    return out


OBJECTS = collect()


def test_collects_the_public_api():
    names = {q for q, *_ in OBJECTS}
    # a few objects of each kind, so a broken collection cannot pass empty
    assert {
        "mtlestimators.MMoEClassifier",
        "mtlestimators.SNRClassifier",
        "mtlestimators._core.base.NetEstimatorBase.fit",
        "mtlestimators.datasets.load_adult_scenarios",
        "mtlestimators.loss_weighters.UniformWeighter",
        "mtlestimators.gates.HardConcreteGate.sample",
        "mtlestimators.gallery._index.GalleryIndex.kneighbors",
    } <= names


def test_every_public_object_is_documented():
    offenders = [m for args in OBJECTS for m in problems(*args)]
    assert not offenders, "Docstring problems:\n" + "\n".join(offenders)


def test_numpydoc_reads_the_same_sections():
    pytest.importorskip("numpydoc")
    offenders = []
    for qualname, obj, params, needs in OBJECTS:
        doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
        if not doc:
            continue  # reported by test_every_public_object_is_documented
        names, summary, caught = numpydoc_names(doc)
        if caught:
            offenders.append(f"{qualname}: numpydoc complains {caught}")
            continue
        if not summary.strip():
            offenders.append(f"{qualname}: numpydoc finds no summary")
        if names != documented_names(doc):
            offenders.append(
                f"{qualname}: numpydoc reads parameters {names}, the section "
                f"parser {documented_names(doc)}"
            )
        offenders += problems(
            qualname, obj, params, needs, parse=lambda d: numpydoc_names(d)[0]
        )
    assert not offenders, "numpydoc:\n" + "\n".join(offenders)


def _example(a, b, *args, c=1, **kwargs):
    pass


@pytest.mark.parametrize(
    "doc, expected",
    [
        (None, ["x: no docstring"]),
        ("Summary.", ["x: no Parameters section (parameters ['a', 'b', 'c'])"]),
        (
            "Summary.\n\nParameters\n----------\na, b : int\n    Two.\n"
            "c : int, default=1\n**kwargs\n    Passed on.\n",
            [],
        ),
        (
            "Summary.\n\nParameters\n----------\na,\nb, c\n    As in f.\n\n"
            "Returns\n-------\nint\n",
            [],
        ),
        (
            "Summary.\n\nParameters\n----------\na : int\nd : int\n",
            [
                "x: documents ['d'], which are not parameters",
                "x: parameters ['b', 'c'] are not documented",
            ],
        ),
    ],
)
def test_the_check_finds_offenders(doc, expected):
    _example.__doc__ = doc
    params = _params(_example)
    assert problems("x", _example, params, True) == expected
    if doc is not None and importlib.util.find_spec("numpydoc") is not None:
        names = numpydoc_names(doc)[0]
        assert problems("x", _example, params, True, parse=lambda d: names) == expected
