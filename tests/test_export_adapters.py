"""Each model family owns its export adapter: mtlestimators.export finds it
through the estimator's ``_export_adapter()`` and imports no estimator class
nor any private name of another module."""

import ast
import inspect
from pathlib import Path

import pytest

import mtlestimators
from mtlestimators import export
from mtlestimators._core.export import ExportAdapter

FAMILIES = ("mtlestimators.tabular", "mtlestimators.autotask", "mtlestimators.gallery")
EXPORTED = {
    "AutoTaskClassifier",
    "CrossStitchClassifier",
    "GalleryEmbedder",
    "MMoEClassifier",
    "MSSMClassifier",
    "MultiTaskDNNClassifier",
    "PLEClassifier",
    "SNRClassifier",
    "SharedBottomClassifier",
    "SingleTaskMLPClassifier",
}


def _public_classes():
    return {
        name: getattr(mtlestimators, name)
        for name in mtlestimators.__all__
        if inspect.isclass(getattr(mtlestimators, name))
    }


def _exported_classes():
    return {
        name: cls
        for name, cls in _public_classes().items()
        if hasattr(cls, "_export_adapter")
    }


def _family(cls) -> str:
    return next(f for f in FAMILIES if cls.__module__.startswith(f + "."))


def test_the_exported_estimators_are_those_the_export_docs_list():
    assert set(_exported_classes()) == EXPORTED


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_every_exported_estimator_has_an_adapter_from_its_own_family(name):
    cls = getattr(mtlestimators, name)
    adapter = cls()._export_adapter()
    assert isinstance(adapter, ExportAdapter)
    family = _family(cls)
    assert type(adapter).__module__ == f"{family}._export"
    for method in ("graph", "metadata", "prepare_inputs"):
        owner = next(k for k in type(adapter).__mro__ if method in vars(k))
        assert owner.__module__ in (f"{family}._export", "mtlestimators._core.export")
    # defined once per family: on the family's base class, not per model
    defined_in = next(k for k in cls.__mro__ if "_export_adapter" in vars(k))
    assert defined_in.__module__.startswith(family + ".")


def test_unsupported_estimator_message_names_every_exported_estimator(tmp_path):
    with pytest.raises(TypeError, match="Cannot export a object") as info:
        export.export_onnx(object(), tmp_path / "model.onnx")
    for name in EXPORTED:
        assert name in str(info.value)


def test_an_estimator_class_is_not_exported(tmp_path):
    with pytest.raises(TypeError, match="Cannot export"):
        export.prepare_inputs(mtlestimators.MSSMClassifier, [[0.0]])


def _imports(source: str):
    """``(module, name)`` for every import in ``source``, at any depth."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            for alias in node.names:
                yield module, alias.name


def test_export_module_imports_no_estimator_class_and_no_private_name():
    source = Path(export.__file__).read_text()
    classes = set(_public_classes())
    for module, name in _imports(source):
        if module == "__future__":
            continue
        assert name not in classes, f"export.py imports {name} from {module}"
        if name is not None:
            assert not name.startswith("_"), f"export.py imports {name}"
        family = module.lstrip(".").split(".")[0]
        assert family not in ("tabular", "autotask", "gallery", "_core"), (
            f"export.py imports from {module}"
        )
        assert not any(part.startswith("_") for part in module.split(".") if part)
    names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
    assert not names & classes, f"export.py refers to {sorted(names & classes)}"
