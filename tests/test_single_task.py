"""SingleTaskMLPClassifier: K independent networks trained in one loop."""

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from mtlestimators import SingleTaskMLPClassifier


def _data(n=800, seed=0):
    rng = np.random.RandomState(seed)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "city": rng.choice(["x", "y", "z", "w"], size=n),
        }
    )
    Y = np.column_stack(
        [frame["a"] * frame["b"] > 0, frame["city"].isin(["x", "y"])]
    ).astype(float)
    return frame, Y


def test_each_task_has_its_own_network_and_learns():
    frame, Y = _data()
    model = SingleTaskMLPClassifier(max_epochs=20, verbose=0, random_state=0)
    model.fit(frame[:600], Y[:600])
    module = model.net_.module_
    # no parameter is shared between the two networks
    first = {
        id(p)
        for p in [*module.fields[0].parameters(), *module.networks[0].parameters()]
    }
    second = {
        id(p)
        for p in [*module.fields[1].parameters(), *module.networks[1].parameters()]
    }
    assert first and second and not first & second
    proba = model.predict_proba(frame[600:])
    # a constant prediction has AUC 0.5; an XOR of signs and a category
    assert roc_auc_score(Y[600:, 0], proba[:, 0]) > 0.85
    assert roc_auc_score(Y[600:, 1], proba[:, 1]) > 0.95


def test_a_task_is_trained_as_if_alone():
    """Changing task 1's labels leaves task 0's network exactly as it was:
    nothing of task 1's loss reaches it."""
    frame, Y = _data(n=300)
    other = Y.copy()
    other[:, 1] = 1 - other[:, 1]
    other[::3, 1] = np.nan
    params = dict(max_epochs=3, verbose=0, random_state=0)
    a = SingleTaskMLPClassifier(**params).fit(frame, Y).predict_proba(frame)
    b = SingleTaskMLPClassifier(**params).fit(frame, other).predict_proba(frame)
    np.testing.assert_allclose(a[:, 0], b[:, 0], rtol=0, atol=1e-6)
    assert np.abs(a[:, 1] - b[:, 1]).max() > 0.1
