"""Declared parameter constraints (``_parameter_constraints``, checked by
``mtlestimators._core.params.validate_params`` at the start of ``fit``).

Every ``__init__`` parameter of every public estimator is declared; a clearly
bad value of any of them is refused by ``fit`` before any epoch runs, with a
message that starts with the estimator's own parameter name; the defaults
pass.
"""

import inspect
import warnings

import numpy as np
import pytest
import skorch
from sklearn.base import clone

import mtlestimators
from mtlestimators import AutoTaskClassifier, SharedBottomClassifier, SNRClassifier
from mtlestimators._core import base as core_base
from mtlestimators._core.params import (
    Boolean,
    Integer,
    Options,
    Real,
    Units,
    check_param,
    init_parameters,
    parameter_constraints,
    validate_params,
)
from tests._harness import fast_instance, make_data

ESTIMATORS = [
    obj
    for name in mtlestimators.__all__
    if inspect.isclass(obj := getattr(mtlestimators, name))
    and callable(getattr(obj, "fit", None))
    and not name.endswith("Base")
]

# Values at least one of which no reasonable declaration accepts.
CANDIDATES = ["yes", "no-such-option", 2, 0, -1, 1.5, -0.5, float("nan"), object()]


def _refused(name, value, constraints) -> bool:
    try:
        check_param(name, value, constraints)
    except (ValueError, TypeError):
        return True
    return False


def _cases():
    for cls in ESTIMATORS:
        for name, constraints in sorted(parameter_constraints(cls).items()):
            if name not in init_parameters(cls):
                continue  # e.g. gate, declared on a base some models lack
            for value in CANDIDATES:
                if _refused(name, value, constraints):
                    yield pytest.param(cls, name, value, id=f"{cls.__name__}-{name}")
                    break  # one per parameter here; the kinds are below


@pytest.fixture
def epochs(monkeypatch):
    started = []
    run = skorch.NeuralNet.run_single_epoch

    def recording(self, *args, **kwargs):
        started.append(type(self).__name__)
        return run(self, *args, **kwargs)

    monkeypatch.setattr(skorch.NeuralNet, "run_single_epoch", recording)
    return started


_DATA = {}


def _data(cls):
    if cls not in _DATA:
        if cls is mtlestimators.GalleryIndex:
            _DATA[cls] = (np.random.RandomState(0).normal(size=(12, 4)),)
        else:
            X, y, _, _ = make_data(fast_instance(cls), n_samples=40)
            _DATA[cls] = (X, y)
    return _DATA[cls]


def _instance(cls):
    if cls is mtlestimators.GalleryIndex:
        return cls(random_state=0)
    return fast_instance(cls)


def _assert_refused(cls, name, value, epochs):
    est = _instance(cls)
    setattr(est, name, value)  # set_params would route GalleryIndex's too
    with pytest.raises((ValueError, TypeError)) as info:
        est.fit(*_data(cls))
    message = str(info.value)
    assert message.startswith((f"{name}=", f"{name} must")), message
    assert epochs == [], "training started before the error"
    assert not hasattr(est, "net_") and not hasattr(est, "embeddings_")


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_every_init_parameter_is_declared(cls):
    declared = parameter_constraints(cls)
    missing = [p for p in init_parameters(cls) if p not in declared]
    assert missing == [], f"{cls.__name__} has undeclared parameters {missing}"


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_defaults_and_test_settings_pass(cls):
    validate_params(cls())
    validate_params(_instance(cls))


@pytest.mark.parametrize("cls, name, value", list(_cases()))
def test_a_bad_value_of_every_parameter_is_refused_at_fit(cls, name, value, epochs):
    _assert_refused(cls, name, value, epochs)


def _kind_cases():
    """The kinds of value each sort of declaration must refuse."""
    for cls in ESTIMATORS:
        for name, constraints in sorted(parameter_constraints(cls).items()):
            if name not in init_parameters(cls):
                continue
            bad = []
            if all(isinstance(c, Boolean) for c in constraints):
                bad += ["yes", 2]
            if any(isinstance(c, Options) for c in constraints) and str not in (
                constraints
            ):
                bad += ["no-such-option"]
            ints = [c for c in constraints if isinstance(c, Integer)]
            if ints and all(c.low is not None and c.low >= 1 for c in ints):
                bad += [0, -1, 1.5]
            if any(isinstance(c, Units) for c in constraints):
                bad += [(0,), (8, -1), (2.5,)]
            if any(isinstance(c, Real) for c in constraints):
                bad += [-1.0, float("nan"), True]
            for value in bad:
                yield pytest.param(
                    cls, name, value, id=f"{cls.__name__}-{name}-{value!r}"
                )


@pytest.mark.parametrize("cls, name, value", list(_kind_cases()))
def test_flags_options_counts_and_widths_refuse_bad_values(cls, name, value, epochs):
    _assert_refused(cls, name, value, epochs)


def test_snr_names_its_own_parameter():
    X, y = _data(SNRClassifier)
    with pytest.raises(
        ValueError, match="n_subnetworks must be a positive integer"
    ) as info:
        SNRClassifier(n_subnetworks=0, verbose=0).fit(X, y)
    assert "n_shared" not in str(info.value)


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"warm_start": "yes"}, TypeError, r"warm_start must be a bool .*got 'yes'"),
        ({"lr": 0}, ValueError, r"lr must be a positive number, got 0"),
        ({"dropout": 1.0}, ValueError, r"dropout must be a number in \[0, 1\)"),
        ({"verbose": -1}, ValueError, r"verbose must be a bool .* or an integer >= 0"),
        ({"random_state": -1}, ValueError, r"random_state must be None, an integer"),
        ({"callbacks": 3}, TypeError, r"callbacks must be None or a list, got 3"),
        ({"train_split": 0.2}, TypeError, r"train_split must be None or a callable"),
        ({"autocast": 16}, ValueError, r"autocast=16 is unknown; use one of \["),
        ({"optimizer": "Adam"}, None, None),  # names are case-insensitive
        ({"verbose": False}, None, None),
        ({"random_state": np.random.RandomState(0)}, None, None),
    ],
)
def test_messages_say_what_is_accepted(params, error, match):
    est = SharedBottomClassifier(**params)
    if error is None:
        validate_params(est)
        return
    with pytest.raises(error, match=match):
        validate_params(est)


def test_a_refused_warm_start_fit_leaves_the_model_as_it_was(epochs):
    X, y = _data(SharedBottomClassifier)
    model = SharedBottomClassifier(max_epochs=1, verbose=0, random_state=0).fit(X, y)
    epochs.clear()
    net, before = model.net_, model.predict_proba(X)
    model.set_params(warm_start=True, tower_units=(8, 0))
    with pytest.raises(ValueError, match="tower_units must be a tuple"):
        model.fit(X, y)
    assert epochs == [] and model.net_ is net
    np.testing.assert_array_equal(model.predict_proba(X), before)


def test_autotask_fit_validates_exactly_once_before_training(monkeypatch, epochs):
    calls = []
    check = core_base.validate_params

    def counting(estimator):
        calls.append(list(epochs))
        return check(estimator)

    monkeypatch.setattr(core_base, "validate_params", counting)
    X, y = _data(AutoTaskClassifier)
    model = AutoTaskClassifier(max_epochs=1, verbose=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.fit(X, y, soft_target=np.full(len(y), 0.5))
    assert calls == [[]], "validated once, before the first epoch"
    clone(model).fit(X, y)
    assert len(calls) == 2


def test_constraints_describe_themselves():
    assert str(Integer(1)) == "a positive integer"
    assert str(Integer(0)) == "an integer >= 0"
    assert str(Integer(2, 5)) == "an integer in [2, 5]"
    assert str(Real(0, None, closed="neither")) == "a positive number"
    assert str(Real(0)) == "a real number >= 0"
    assert str(Real(0, 1, closed="left")) == "a number in [0, 1)"
    with pytest.raises(ValueError, match=r"^mode='c' is unknown; use one of "):
        check_param("mode", "c", [Options(["a", "b"])])
    with pytest.raises(TypeError, match=r"^n must be None or a positive integer"):
        check_param("n", "3", [None, Integer(1)])
    check_param("flag", np.bool_(True), [Boolean()])
    check_param("n", np.int64(3), [Integer(1)])
