import sys
import textwrap
import warnings

import numpy as np
import pytest
from sklearn.base import clone

from mtlestimators import SharedBottomClassifier
from mtlestimators.loss_weighters import UncertaintyWeighter, UniformWeighter
from mtlestimators.plugins import (
    PluginWarning,
    available_gates,
    available_loss_weighters,
    build_gate,
    get_gate,
    get_loss_weighter,
    list_plugins,
)


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    """A separately 'installed' distribution with one good and one broken plugin."""
    (tmp_path / "mtl_fake_good.py").write_text(
        textwrap.dedent("""
        import torch
        from mtlestimators.loss_weighters import LossWeighter

        class HalfWeighter(LossWeighter):
            def forward(self, losses):
                return 0.5 * losses.sum()
    """)
    )
    (tmp_path / "mtl_fake_broken.py").write_text("raise ImportError('boom')\n")
    info = tmp_path / "mtl_fake_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mtl-fake-plugins\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        textwrap.dedent("""
        [mtlestimators.loss_weighters]
        half = mtl_fake_good:HalfWeighter
        broken = mtl_fake_broken:Broken
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("mtl_fake_good", "mtl_fake_broken"):
        sys.modules.pop(name, None)


def test_builtins_are_registered_through_entry_points():
    assert {"uniform", "pseudo_uniform", "uncertainty"} <= set(
        available_loss_weighters()
    )
    assert {"hard_concrete", "softmax"} <= set(available_gates())
    builtins = [p for p in list_plugins() if p.distribution == "mtlestimators"]
    assert {p.name for p in builtins} >= {"uniform", "hard_concrete"}
    assert get_loss_weighter("uncertainty") is UncertaintyWeighter


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(ValueError, match=r"Unknown loss weighter 'nope'.*'uniform'"):
        get_loss_weighter("nope")
    with pytest.raises(ValueError, match=r"Unknown gate 'nope'.*'hard_concrete'"):
        get_gate("nope")


def test_estimator_reports_unknown_weighter_before_training():
    X, y = np.zeros((10, 2)), np.arange(10) % 2
    with pytest.raises(ValueError, match="Available loss weighters"):
        SharedBottomClassifier(loss_weighter="nope", verbose=0).fit(X, y)


def test_third_party_plugin_is_found_and_broken_one_is_skipped(third_party):
    with pytest.warns(PluginWarning, match="mtl-fake-plugins"):
        names = available_loss_weighters()
    assert "half" in names and "broken" not in names and "uniform" in names
    with pytest.raises(ImportError, match="distribution mtl-fake-plugins 1.0"):
        get_loss_weighter("broken")
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    clf = SharedBottomClassifier(loss_weighter="half", max_epochs=2, verbose=0)
    clf.fit(X, y)
    assert type(clf.net_.loss_weighter_).__name__ == "HalfWeighter"


def test_parameter_accepts_class_with_routed_params():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    clf = SharedBottomClassifier(
        loss_weighter=UniformWeighter,
        loss_weighter__weights=[2.0],
        max_epochs=1,
        verbose=0,
    ).fit(X, y)
    assert clf.net_.loss_weighter_.weights.tolist() == [2.0]


def test_bad_routed_weighter_param_names_the_accepted_ones():
    X, y = np.zeros((10, 2)), np.arange(10) % 2
    clf = SharedBottomClassifier(loss_weighter__alpha=1.0, verbose=0)
    with pytest.raises(ValueError, match=r"accepts \['loss_weighter__weights'\]"):
        clf.fit(X, y)


def test_instance_parameter_survives_clone_and_is_not_mutated():
    instance = UncertaintyWeighter(2)
    clf = SharedBottomClassifier(loss_weighter=instance, max_epochs=3, verbose=0)
    copy = clone(clf)
    assert isinstance(copy.loss_weighter, UncertaintyWeighter)
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 3))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    copy.fit(X, Y)
    assert instance.log_variance.detach().abs().sum().item() == 0.0
    assert copy.net_.loss_weighter_.log_variance.detach().abs().sum().item() > 0.0


def test_instance_for_the_wrong_number_of_tasks_is_refused():
    X, y = np.zeros((10, 2)), np.arange(10) % 2
    clf = SharedBottomClassifier(loss_weighter=UncertaintyWeighter(3), verbose=0)
    with pytest.raises(ValueError, match="built for 3 tasks but y has 1"):
        clf.fit(X, y)


def test_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="gate must be a registered name"):
        build_gate(3.0, 2, 2)


def test_building_a_gate_by_name():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gate = build_gate("hard_concrete", 4, 6, beta=0.5)
    assert gate.n_outputs == 6 and gate.beta == 0.5
