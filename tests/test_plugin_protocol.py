"""The plugin protocol as docs/plugins.md states it.

A loss weighter is any ``nn.Module`` built as ``cls(n_tasks)`` with
``forward(losses)`` (``prepare``/``epoch_end`` are optional), a gate any
``nn.Module`` built as ``cls(n_inputs, n_outputs)`` (``penalty`` optional);
built-in names cannot be shadowed by another distribution; ``mtlestimators
plugins`` shows broken plugins and exits 1; ``mtlestimators --version``.
"""

import pickle
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch import nn

import mtlestimators
from mtlestimators import MMoEClassifier, MSSMClassifier, SharedBottomClassifier
from mtlestimators.cli import main
from mtlestimators.loss_weighters import UniformWeighter
from mtlestimators.plugins import (
    PluginWarning,
    call_hook,
    gate_penalty,
    get_gate,
    get_loss_weighter,
    list_plugins,
)


class Max(nn.Module):
    """A plain module (no LossWeighter, no prepare/epoch_end): the worst task."""

    def __init__(self, n_tasks):
        super().__init__()
        self.n_tasks = n_tasks

    def forward(self, losses):
        return losses.max()


class PlainSigmoidGate(nn.Module):
    """A plain gate module without penalty()."""

    def __init__(self, n_inputs, n_outputs):
        super().__init__()
        self.linear = nn.Linear(n_inputs, n_outputs)

    def forward(self, x):
        return torch.sigmoid(self.linear(x))


class PlainSoftmaxGate(PlainSigmoidGate):
    def forward(self, x):
        return torch.softmax(self.linear(x), dim=-1)


def _two_tasks(n=400, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    Y = np.column_stack([X[:, 0] > 0, X[:, 0] + X[:, 1] > 0.5]).astype(int)
    return X[:300], Y[:300], X[300:], Y[300:]


def _beats_majority(clf, X_test, Y_test):
    accuracy = (clf.predict(X_test) == Y_test).mean(axis=0)
    majority = np.maximum(Y_test.mean(axis=0), 1 - Y_test.mean(axis=0))
    assert np.all(accuracy > majority + 0.1), (accuracy, majority)


def _install(path, monkeypatch, dist, modules, entry_points):
    """Write a fake installed distribution ``dist`` into ``path`` and put it
    on sys.path (the approach of tests/test_plugins.py)."""
    path.mkdir(exist_ok=True)
    for name, source in modules.items():
        (path / f"{name}.py").write_text(textwrap.dedent(source))
    info = path / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    monkeypatch.syspath_prepend(str(path))
    for name in modules:
        monkeypatch.delitem(sys.modules, name, raising=False)


PLAIN_WEIGHTER = """
    from torch import nn

    class Max(nn.Module):
        def __init__(self, n_tasks):
            super().__init__()
            self.n_tasks = n_tasks

        def forward(self, losses):
            return losses.max()
"""


@pytest.fixture
def plain_plugin(tmp_path, monkeypatch):
    """A distribution registering a plain nn.Module weighter as ``max``."""
    _install(
        tmp_path / "site",
        monkeypatch,
        "mtl-plain-weighter",
        {"mtl_plain_weighter": PLAIN_WEIGHTER},
        """
        [mtlestimators.loss_weighters]
        max = mtl_plain_weighter:Max
        """,
    )


# ------------------------------------------------------- optional hooks


def test_call_hook_skips_a_missing_hook_and_calls_a_present_one():
    weighter = Max(2)
    assert call_hook(weighter, "prepare", np.zeros((3, 2)), ["binary"] * 2) is None
    assert call_hook(weighter, "epoch_end") is None
    calls = []
    weighter.epoch_end = lambda: calls.append(1) or "done"
    assert call_hook(weighter, "epoch_end") == "done" and calls == [1]


@pytest.mark.parametrize("spec", [Max, Max(2)], ids=["class", "instance"])
def test_plain_module_weighter_trains_predicts_clones_and_pickles(spec):
    X, Y, X_test, Y_test = _two_tasks()
    clf = SharedBottomClassifier(
        loss_weighter=spec, max_epochs=15, verbose=0, random_state=0
    )
    clf.fit(X, Y)
    assert type(clf.net_.loss_weighter_) is Max
    _beats_majority(clf, X_test, Y_test)
    proba = clf.predict_proba(X_test)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(X_test)[0], proba[0])
    copy = clone(clf)
    assert isinstance(copy.loss_weighter, (type, Max))
    copy.fit(X, Y)
    np.testing.assert_allclose(copy.predict_proba(X_test)[1], proba[1], rtol=1e-5)


def test_plain_module_weighter_with_warm_start():
    X, Y, X_test, Y_test = _two_tasks()
    clf = SharedBottomClassifier(
        loss_weighter=Max, max_epochs=8, warm_start=True, verbose=0, random_state=0
    )
    clf.fit(X, Y).fit(X, Y)
    assert len(clf.history_) == 16
    _beats_majority(clf, X_test, Y_test)


def test_plain_module_weighter_with_checkpoint_dir(tmp_path):
    X, Y, X_test, Y_test = _two_tasks()
    params = dict(
        loss_weighter=Max,
        max_epochs=12,
        verbose=0,
        random_state=0,
        checkpoint_dir=tmp_path,
    )
    first = SharedBottomClassifier(**params).fit(X, Y)
    _beats_majority(first, X_test, Y_test)
    assert len(list(tmp_path.glob("mtl-checkpoint-*.pt"))) == 1
    # The completed checkpoint is loaded, not retrained: same predictions.
    again = SharedBottomClassifier(**params).fit(X, Y)
    assert len(again.history_) == 12
    np.testing.assert_array_equal(
        again.predict_proba(X_test)[0], first.predict_proba(X_test)[0]
    )


def test_plain_module_weighter_registered_through_an_entry_point(
    plain_plugin, tmp_path
):
    X, Y, X_test, Y_test = _two_tasks()
    cls = get_loss_weighter("max")
    assert not hasattr(cls, "prepare") and not hasattr(cls, "epoch_end")
    clf = SharedBottomClassifier(
        loss_weighter="max", max_epochs=15, verbose=0, random_state=0
    ).fit(X, Y)
    assert type(clf.net_.loss_weighter_) is cls
    _beats_majority(clf, X_test, Y_test)
    # warm_start and checkpoint_dir with the registered name
    warm = SharedBottomClassifier(
        loss_weighter="max", max_epochs=4, warm_start=True, verbose=0, random_state=0
    )
    warm.fit(X, Y).fit(X, Y)
    assert len(warm.history_) == 8
    params = dict(
        loss_weighter="max",
        max_epochs=3,
        verbose=0,
        random_state=0,
        checkpoint_dir=tmp_path / "ckpt",
    )
    first = SharedBottomClassifier(**params).fit(X, Y)
    again = SharedBottomClassifier(**params).fit(X, Y)
    np.testing.assert_array_equal(
        again.predict_proba(X_test)[1], first.predict_proba(X_test)[1]
    )
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(
        restored.predict_proba(X_test)[0], clf.predict_proba(X_test)[0]
    )


def test_gate_penalty_is_zero_for_a_gate_without_one():
    gate = PlainSigmoidGate(3, 2)
    value = gate_penalty(gate)
    assert isinstance(value, torch.Tensor) and value.shape == ()
    assert value.item() == 0.0
    assert gate_penalty(get_gate("hard_concrete")(3, 2)).item() > 0.0


def test_plain_gate_without_penalty_trains_in_mmoe_and_mssm():
    X, Y, X_test, Y_test = _two_tasks()
    mmoe = MMoEClassifier(
        gate=PlainSoftmaxGate, l0_penalty=1e-2, max_epochs=15, verbose=0, random_state=0
    ).fit(X, Y)
    assert all(type(g) is PlainSoftmaxGate for g in mmoe.net_.module_.gates)
    _beats_majority(mmoe, X_test, Y_test)
    mssm = MSSMClassifier(
        gate=PlainSigmoidGate, max_epochs=15, verbose=0, random_state=0
    ).fit(X, Y)
    assert all(type(g) is PlainSigmoidGate for g in mssm.net_.module_.gates)
    _beats_majority(mssm, X_test, Y_test)


# ------------------------------------------------------------ precedence

SHADOW = """
    from torch import nn

    class Evil(nn.Module):
        def __init__(self, n_tasks):
            super().__init__()

        def forward(self, losses):
            return 0.0 * losses.sum()
"""


def test_a_third_party_plugin_cannot_shadow_a_built_in(tmp_path, monkeypatch):
    # "aaa_..." sorts before "mtlestimators.", so by target order it would win.
    _install(
        tmp_path / "site",
        monkeypatch,
        "mtl-shadow-plugins",
        {"aaa_mtl_shadow": SHADOW},
        """
        [mtlestimators.loss_weighters]
        uniform = aaa_mtl_shadow:Evil
        """,
    )
    with pytest.warns(PluginWarning) as caught:
        cls = get_loss_weighter("uniform")
    assert cls is UniformWeighter
    (message,) = {str(w.message) for w in caught}
    assert "mtl-shadow-plugins" in message and "aaa_mtl_shadow:Evil" in message
    assert "built-in" in message
    with pytest.warns(PluginWarning, match="mtl-shadow-plugins"):
        (uniform,) = [p for p in list_plugins() if p.name == "uniform"]
    assert uniform.distribution == "mtlestimators"
    X, Y, _, _ = _two_tasks(n=320)
    with pytest.warns(PluginWarning, match="mtl-shadow-plugins"):
        clf = SharedBottomClassifier(max_epochs=1, verbose=0).fit(X, Y)
    assert type(clf.net_.loss_weighter_) is UniformWeighter


def test_between_two_third_parties_the_first_target_in_sorted_order_wins(
    tmp_path, monkeypatch
):
    source = """
        from torch import nn

        class Twin(nn.Module):
            def __init__(self, n_tasks):
                super().__init__()

            def forward(self, losses):
                return losses.sum()
    """
    entry = """
        [mtlestimators.loss_weighters]
        twin = {}:Twin
    """
    _install(
        tmp_path / "b",
        monkeypatch,
        "mtl-twin-b",
        {"mtl_twin_b": source},
        entry.format("mtl_twin_b"),
    )
    _install(
        tmp_path / "a",
        monkeypatch,
        "mtl-twin-a",
        {"mtl_twin_a": source},
        entry.format("mtl_twin_a"),
    )
    with pytest.warns(PluginWarning, match="Two plugins are named 'twin'") as caught:
        cls = get_loss_weighter("twin")
    assert cls.__module__ == "mtl_twin_a"
    message = str(caught[0].message)
    assert "mtl_twin_a:Twin (from mtl-twin-a) is used" in message
    assert "mtl_twin_b:Twin (from mtl-twin-b) is ignored" in message


# ------------------------------------------------------------------ CLI


def test_plugins_command_shows_a_broken_plugin_and_exits_1(
    tmp_path, monkeypatch, capsys
):
    _install(
        tmp_path / "site",
        monkeypatch,
        "mtl-broken-plugins",
        {
            "mtl_fake_broken2": "raise ImportError('boom')\n",
            "mtl_plain_ok": PLAIN_WEIGHTER,
        },
        """
        [mtlestimators.loss_weighters]
        kaputt = mtl_fake_broken2:Broken
        fine = mtl_plain_ok:Max
        """,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the command reports, never warns
        assert main(["plugins"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "kind",
        "name",
        "distribution",
        "version",
        "target",
        "status",
    ]
    (kaputt,) = [line for line in lines if " kaputt " in line]
    assert "mtl-broken-plugins" in kaputt
    assert kaputt.endswith("broken: ImportError: boom")
    (fine,) = [line for line in lines if " fine " in line]
    assert fine.endswith(" ok")
    (uniform,) = [line for line in lines if " uniform " in line]
    assert uniform.endswith(" ok")
    info = {p.name: p for p in list_plugins()}
    assert info["kaputt"].broken and info["kaputt"].status.startswith("broken: ")
    assert not info["uniform"].broken and info["uniform"].status == "ok"


def test_plugins_command_exits_0_without_a_broken_plugin(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "broken" not in out and "status" not in out.splitlines()[0]


def test_version_option(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out == f"mtlestimators {mtlestimators.__version__}\n"
    assert mtlestimators.__version__ != "0+unknown"
