"""The checkpointer reaches the net as its ``checkpointer`` constructor
parameter, and a fitted net holds none."""

import pickle

import numpy as np
from sklearn.base import clone

from mtlestimators import SharedBottomClassifier
from mtlestimators._core.net import MultiTaskNet


def _data():
    rng = np.random.RandomState(0)
    X = rng.randn(40, 3).astype(np.float32)
    Y = (rng.rand(40, 2) > 0.5).astype(float)
    return X, Y


def test_checkpointer_is_a_net_parameter():
    net = MultiTaskNet(object, task_kinds=["binary"])
    assert net.checkpointer is None
    assert net.get_params()["checkpointer"] is None
    marker = object()
    net.set_params(checkpointer=marker)
    assert net.checkpointer is marker


def test_a_fitted_net_holds_no_checkpointer(tmp_path):
    X, Y = _data()
    model = SharedBottomClassifier(
        max_epochs=2, random_state=0, checkpoint_dir=tmp_path, verbose=0
    ).fit(X, Y)
    assert model.net_.checkpointer is None
    assert list(tmp_path.glob("mtl-checkpoint-*.pt"))
    loaded = pickle.loads(pickle.dumps(model))
    assert loaded.net_.checkpointer is None
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    # The same fit again loads the complete checkpoint: same model, no
    # checkpointer kept either.
    again = clone(model).fit(X, Y)
    assert again.net_.checkpointer is None
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))


def test_a_net_pickled_without_the_parameter_still_trains():
    X, Y = _data()
    model = SharedBottomClassifier(max_epochs=1, random_state=0, verbose=0).fit(X, Y)
    del model.net_.__dict__["checkpointer"]  # as a net pickled before it existed
    loaded = pickle.loads(pickle.dumps(model))
    loaded.set_params(warm_start=True).fit(X, Y)
    assert len(loaded.history_) == 2
