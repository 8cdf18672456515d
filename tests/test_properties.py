"""Family-wide properties (hypothesis), parametrized over every estimator.

Every public estimator (``mtlestimators.__all__``, as in ``test_common.py``)
and every registered loss weighter joins these tests automatically:

1. a gallery embedding ignores the order of the images in the gallery (for
   every pooling);
2. the prediction of a row does not depend on the other rows of the call nor
   on the prediction batch size (``predict_proba``; ``transform`` for
   ``GalleryEmbedder``);
3. a missing label contributes exactly zero gradient to its task's output in
   the training loss (the net's ``get_loss``: ``MultiTaskLoss``, the loss
   weighter and the regularization), for every model and every weighter;
4. loss weighters give finite totals for finite losses and scale as their
   docstrings state;
5. ``clone(est).fit`` with a fixed ``random_state`` gives identical
   predictions and state dicts, and another seed gives another model.

Models are fitted once per module on small data for two epochs; the
per-model property tests (``test_gallery_properties.py``, ``test_autotask.py``)
go deeper on their own model.
"""

from __future__ import annotations

import copy
import inspect
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from mtlestimators import GalleryEmbedder, PerTaskCalibratedClassifier
from mtlestimators._core.data import TensorData
from mtlestimators._core.net import MultiTaskLoss
from mtlestimators.loss_weighters import GradientWeighter
from mtlestimators.plugins import (
    available_loss_weighters,
    build_loss_weighter,
    get_loss_weighter,
)
from mtlestimators.utils import all_estimators
from tests._harness import fast_instance, make_data, outputs, param_prefix

ESTIMATORS = [cls for _, cls in all_estimators()]
WEIGHTERS = available_loss_weighters()
# Looked up once: a registry lookup reads the installed entry points (~30 ms).
_WEIGHTER_CLASSES = {name: get_loss_weighter(name) for name in WEIGHTERS}
N_SAMPLES = 80  # 60 training rows, 20 held out
EPOCHS = 2
# Predictions of one row computed in batches of different shapes: CPU kernels
# may differ by a few 1e-7 between shapes (measured up to 3e-7 on gallery
# embeddings, whose values are below 1); a real dependence on the batch is
# far larger.
BATCH_ATOL = 1e-6
# Shuffling a gallery reorders the encoder's batch the same way.
PERMUTATION_ATOL = 1e-5


def _instance(cls, **params):
    est = fast_instance(cls)
    prefix = param_prefix(est)
    settings_ = {"max_epochs": EPOCHS, **params}
    return est.set_params(**{prefix + k: v for k, v in settings_.items()})


def _inner(est):
    """The fitted estimator that holds the net (a meta-estimator's inner one)."""
    return est.estimator_ if isinstance(est, PerTaskCalibratedClassifier) else est


def _all_rows(X, X_test):
    return np.concatenate([X, X_test])


@pytest.fixture(scope="module", params=ESTIMATORS, ids=lambda c: c.__name__)
def fitted(request):
    est = _instance(request.param)
    X, y, X_test, _ = make_data(est, n_samples=N_SAMPLES)
    return est.fit(X, y), _all_rows(X, X_test)


@contextmanager
def _prediction_batch_size(est, size):
    """Predict in batches of ``size`` rows: every model slices its input by
    its estimator's current ``batch_size`` at predict and transform time."""
    holder, name = _inner(est), "batch_size"
    old = getattr(holder, name)
    setattr(holder, name, size)
    try:
        yield
    finally:
        setattr(holder, name, old)


# ------------------------------------------------- 1. gallery permutations
_POOL = np.random.RandomState(0).randint(0, 256, size=(40, 8, 8), dtype=np.uint8)
_galleries = st.lists(
    st.lists(st.integers(0, len(_POOL) - 1), min_size=1, max_size=8),
    min_size=1,
    max_size=10,
)


def _build(index_lists):
    return [_POOL[np.asarray(index)] for index in index_lists]


@pytest.fixture(scope="module", params=["mean", "max", "attention"])
def gallery_embedder(request):
    rng = np.random.RandomState(1)
    galleries = _build([rng.choice(len(_POOL), size=k) for k in rng.randint(1, 7, 24)])
    y = np.column_stack([rng.randint(0, 2, 24), rng.normal(size=24)])
    emb = _instance(GalleryEmbedder, pooling=request.param, max_epochs=1)
    return emb.fit(galleries, y)


@settings(max_examples=10, deadline=None)
@given(index_lists=_galleries, seed=st.integers(0, 2**16))
def test_gallery_embedding_ignores_image_order(gallery_embedder, index_lists, seed):
    rng = np.random.RandomState(seed)
    shuffled = [rng.permutation(index) for index in index_lists]
    reference = gallery_embedder.transform(_build(index_lists))
    np.testing.assert_allclose(
        gallery_embedder.transform(_build(shuffled)),
        reference,
        rtol=0,
        atol=PERMUTATION_ATOL,
    )
    assert np.isfinite(reference).all()


@settings(max_examples=10, deadline=None)
@given(index_lists=_galleries, data=st.data())
def test_gallery_embedding_ignores_the_other_galleries_of_the_call(
    gallery_embedder, index_lists, data
):
    galleries = _build(index_lists)
    reference = gallery_embedder.transform(galleries)
    order = data.draw(st.permutations(range(len(galleries))))
    keep = order[: data.draw(st.integers(1, len(order)))]
    with _prediction_batch_size(gallery_embedder, data.draw(st.integers(1, 12))):
        part = gallery_embedder.transform([galleries[i] for i in keep])
    np.testing.assert_allclose(part, reference[keep], rtol=0, atol=BATCH_ATOL)


# ------------------------------------------------ 2. batch composition
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_prediction_of_a_row_ignores_the_rest_of_the_call(fitted, data):
    est, X = fitted
    reference = outputs(est, X)
    rows = data.draw(
        st.lists(st.integers(0, len(X) - 1), min_size=1, max_size=30, unique=True),
        label="rows",
    )
    size = data.draw(st.integers(1, 40), label="batch_size")
    with _prediction_batch_size(est, size):
        part = outputs(est, X[rows])
    np.testing.assert_allclose(part, reference[rows], rtol=0, atol=BATCH_ATOL)


def test_prediction_batch_size_is_honoured(fitted):
    # The property above is only meaningful if the size really changes how
    # the model is called: count the module calls.
    est, X = fitted
    module = _inner(est).net_.module_
    # transform runs the gallery encoder, not the module's forward.
    target = module.encoder if isinstance(est, GalleryEmbedder) else module
    calls = []
    handle = target.register_forward_hook(lambda *args: calls.append(1))
    try:
        with _prediction_batch_size(est, 7):
            outputs(est, X[:20])
    finally:
        handle.remove()
    # ceil(20 / 7) = 3 calls per pass over the rows (the calibrated model may
    # score the rows a second time as an unseen task).
    assert len(calls) in (3, 6)


# ------------------------------------- 3. missing labels: zero gradient
def _training_outputs(est, X):
    """Module outputs for rows X, computed in training mode as fit does."""
    net = est.net_
    if isinstance(est, GalleryEmbedder):
        batch, _ = next(iter(net.gallery_iterator(est._dataset(X), len(X))))
        return net.infer(batch)
    return net.infer(TensorData(est._predict_inputs(X)).rows(slice(None)))


def _random_targets(rng, y_pred, kinds):
    """(B, K) float targets encoded as the net trains on them."""
    columns = []
    for out, kind in zip(y_pred, kinds):
        n = len(out)
        if kind == "binary":
            columns.append(rng.randint(0, 2, n))
        elif kind == "multiclass":
            columns.append(rng.randint(0, out.shape[1], n))
        else:
            columns.append(rng.normal(size=n))
    return np.column_stack(columns).astype(np.float32)


def _check_zero_gradient_of_missing_labels(loss_of, y_pred, y, missing, perturb):
    """``loss_of(outputs, y)`` has exactly zero gradient w.r.t. the outputs of
    the missing labels, non-zero w.r.t. the labelled ones, and changing the
    outputs of the missing labels leaves the loss bit-for-bit unchanged."""
    leaves = [o.detach().clone().requires_grad_(True) for o in y_pred]
    y_true = torch.as_tensor(np.where(missing, np.nan, y))
    loss = loss_of(tuple(leaves), y_true)
    grads = torch.autograd.grad(loss, leaves)
    for k, grad in enumerate(grads):
        per_row = grad.reshape(len(grad), -1)
        assert torch.isfinite(per_row).all()
        gone = torch.as_tensor(missing[:, k])
        assert (per_row[gone] == 0).all(), f"task {k}: a missing label has gradient"
        assert (per_row[~gone] != 0).any(dim=1).all(), f"task {k}: no gradient"
    moved = []
    for k, out in enumerate(leaves):
        out = out.detach().clone()
        gone = torch.as_tensor(missing[:, k])
        out[gone] = out[gone] + torch.as_tensor(perturb, dtype=out.dtype)
        moved.append(out)
    assert loss_of(tuple(moved), y_true).item() == loss.item()


def _missing_patterns(n_tasks):
    return st.integers(2, 12).flatmap(
        lambda n: st.lists(
            st.lists(st.booleans(), min_size=n_tasks, max_size=n_tasks),
            min_size=n,
            max_size=n,
        )
    )


def test_a_missing_label_has_zero_gradient_in_the_training_loss(fitted):
    est, X = fitted
    if isinstance(est, PerTaskCalibratedClassifier):
        pytest.skip("a meta-estimator: its net is AutoTaskClassifier's, tested there")
    net = est.net_
    kinds = net.task_kinds
    saved = copy.deepcopy(net.module_.state_dict())

    @settings(max_examples=10, deadline=None)
    @given(
        pattern=_missing_patterns(len(kinds)),
        seed=st.integers(0, 2**16),
        perturb=st.floats(-50, 50, allow_nan=False, width=32),
    )
    def check(pattern, seed, perturb):
        rng = np.random.RandomState(seed)
        rows = rng.choice(len(X), size=len(pattern), replace=False)
        net._set_training(True)
        try:
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                y_pred = _training_outputs(est, X[rows])
        finally:
            net._set_training(False)
            net.module_.load_state_dict(saved)  # batch-norm statistics
        y = _random_targets(rng, y_pred, kinds)

        def loss_of(outputs_, y_true):
            return net.get_loss(outputs_, y_true, training=True)

        _check_zero_gradient_of_missing_labels(
            loss_of, y_pred, y, np.asarray(pattern), perturb
        )

    check()


@pytest.mark.parametrize("name", WEIGHTERS)
@settings(max_examples=10, deadline=None)
@given(
    kinds=st.lists(
        st.sampled_from(["binary", "multiclass", "regression"]), min_size=2, max_size=4
    ),
    pattern_seed=st.integers(0, 2**16),
    perturb=st.floats(-50, 50, allow_nan=False, width=32),
)
def test_a_missing_label_has_zero_gradient_with_every_weighter(
    name, kinds, pattern_seed, perturb
):
    rng = np.random.RandomState(pattern_seed)
    n = 8
    y_pred = tuple(
        torch.randn(n, 3) if kind == "multiclass" else torch.randn(n) for kind in kinds
    )
    y = _random_targets(rng, y_pred, kinds)
    missing = rng.rand(n, len(kinds)) < 0.4
    weighter = build_loss_weighter(_WEIGHTER_CLASSES[name], len(kinds))
    weighter.prepare(y, kinds)
    criterion = MultiTaskLoss(kinds)
    takes_mask = "labelled" in inspect.signature(weighter.forward).parameters

    def loss_of(outputs_, y_true):
        losses = criterion(outputs_, y_true)
        torch.manual_seed(pattern_seed)  # rlw: the same draw in every call
        if takes_mask:
            return weighter(losses, labelled=~torch.isnan(y_true).all(dim=0))
        return weighter(losses)

    with torch.random.fork_rng():
        weighter.train()  # the training loss
        _check_zero_gradient_of_missing_labels(loss_of, y_pred, y, missing, perturb)


# ------------------------------------------------- 4. loss weighters
# Finite losses of any magnitude that float32 sums of six still hold: zero,
# subnormal, tiny, ordinary and huge values, each often enough that
# consecutive epochs jump between extremes.
_loss_values = st.one_of(
    st.sampled_from([0.0, 1e-40, 1e-30, 1.0, 1e30]),
    st.floats(0.0, float(np.float32(1e30)), width=32),
)
_losses = st.lists(_loss_values, min_size=1, max_size=6)
_scales = st.floats(1e-3, 1e3)


def _prepared(name, kinds, seed=0):
    weighter = build_loss_weighter(_WEIGHTER_CLASSES[name], len(kinds))
    rng = np.random.RandomState(seed)
    y = np.column_stack(
        [
            rng.normal(size=8) if kind == "regression" else rng.randint(0, 2, 8)
            for kind in kinds
        ]
    ).astype(np.float32)
    weighter.prepare(y, kinds)
    return weighter


def _call(weighter, losses, labelled=None):
    if "labelled" in inspect.signature(weighter.forward).parameters:
        return weighter(losses, labelled=labelled)
    return weighter(losses)


@pytest.mark.parametrize("name", WEIGHTERS)
@settings(max_examples=25, deadline=None)
@given(
    epochs=st.lists(_losses, min_size=2, max_size=4),
    regression=st.lists(st.booleans(), min_size=6, max_size=6),
    labelled=st.lists(st.booleans(), min_size=6, max_size=6),
)
# A task loss jumping from 0 to 1e30 between epochs once overflowed dwa's
# loss ratio to inf and its weights to NaN.
@example(epochs=[[0.0, 1.0], [1e30, 1.0]], regression=[False] * 6, labelled=[True] * 6)
def test_weighter_is_finite_for_finite_losses(name, epochs, regression, labelled):
    k = len(epochs[0])
    epochs = [(e * k)[:k] for e in epochs]  # every epoch with k tasks
    kinds = ["regression" if r else "binary" for r in regression[:k]]
    labelled = torch.tensor(labelled[:k])
    weighter = _prepared(name, kinds).train()
    for values in epochs:  # training steps, one per epoch, with epoch ends
        total = _call(weighter, torch.tensor(values), labelled)
        assert torch.isfinite(total), (values, total)
        if hasattr(weighter, "epoch_end"):
            weighter.epoch_end()
        for tensor in [*weighter.parameters(), *weighter.buffers()]:
            assert not torch.isinf(tensor).any(), dict(weighter.named_buffers())
    weighter.eval()
    assert torch.isfinite(_call(weighter, torch.tensor(epochs[-1]), labelled))


# How each weighter's total scales with the losses, as its docstring states:
# "linear": total(c L) = c total(L) for c > 0 with the weighter's state fixed
# (and, for rlw, the same random draw); "affine": uncertainty's
# sum_k (f_k exp(-s_k) L_k + s_k / 2) has a constant term, so
# total(c L) - total(0) = c (total(L) - total(0)).
SCALING = {
    "uniform": "linear",
    "pseudo_uniform": "linear",
    "uncertainty": "affine",
    "dwa": "linear",
    "rlw": "linear",
    "pcgrad": "linear",
    "mgda": "linear",
    "cagrad": "linear",
    "gradnorm": "linear",
    "upgrad": "linear",
    "imtl_g": "linear",
    "aligned_mtl": "linear",
    "dualproj": "linear",
    "mgda_params": "linear",
    "famo": "linear",
}


def test_every_registered_weighter_states_how_it_scales():
    unknown = sorted(set(WEIGHTERS) - set(SCALING))
    assert not unknown, (
        f"loss weighters {unknown} have no scaling entry here: state in the "
        "docstring how the total scales with the losses, and add it to SCALING"
    )


def _advance(weighter, history):
    """Training steps (one per epoch, each closed by ``epoch_end``), so the
    weighter's state is not only its initial one."""
    weighter.train()
    for values in history:
        _call(weighter, torch.tensor(values), torch.ones(len(values), dtype=bool))
        if hasattr(weighter, "epoch_end"):
            weighter.epoch_end()


def _kinds(k):
    return (["binary", "regression"] * k)[:k]


@pytest.mark.parametrize("name", WEIGHTERS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@settings(max_examples=8, deadline=None)
@given(
    losses=st.lists(st.floats(0.0, 1e6, width=32), min_size=2, max_size=5),
    scale=_scales,
    shift=st.floats(-3.0, 3.0),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_weighter_scales_as_documented(
    name, training, losses, scale, shift, seed, data
):
    k = len(losses)
    history = data.draw(
        st.lists(st.lists(st.floats(0.01, 10.0), min_size=k, max_size=k), max_size=3)
    )
    weighter = _prepared(name, _kinds(k))
    _advance(weighter, history)
    with torch.no_grad():  # learned parameters away from their start
        for parameter in weighter.parameters():
            parameter.add_(shift)
    weighter.train(training)
    if training and hasattr(weighter, "running"):
        # dwa accumulates the epoch's losses in training: keep its state fixed.
        state = copy.deepcopy(weighter.state_dict())

    def total(values):
        with torch.random.fork_rng():  # the same draw for rlw
            torch.manual_seed(seed)
            out = _call(weighter, torch.tensor(values), torch.ones(k, dtype=bool))
        if training and hasattr(weighter, "running"):
            weighter.load_state_dict(state)
        return out.item()

    base = total(losses)
    scaled = total([scale * v for v in losses])
    if SCALING[name] == "affine":
        zero = total([0.0] * k)
        base, scaled = base - zero, scaled - zero
    assert scaled == pytest.approx(scale * base, rel=1e-5, abs=1e-3)


@settings(max_examples=15, deadline=None)
@given(
    history=st.integers(2, 4).flatmap(
        lambda k: st.lists(
            st.lists(st.floats(1e-3, 1e3), min_size=k, max_size=k),
            min_size=2,
            max_size=4,
        )
    ),
    scale=_scales,
)
def test_dwa_weights_ignore_a_common_scale_of_the_losses(history, scale):
    k = len(history[0])
    plain, scaled = _prepared("dwa", _kinds(k)), _prepared("dwa", _kinds(k))
    _advance(plain, history)
    _advance(scaled, [[scale * v for v in values] for values in history])
    torch.testing.assert_close(scaled.weights, plain.weights, rtol=1e-4, atol=1e-6)


# Weighters that implement GradientWeighter.combine (gradnorm overrides the
# whole combine_gradients step instead).
_COMBINING = [
    name
    for name, cls in _WEIGHTER_CLASSES.items()
    if getattr(cls, "combine", GradientWeighter.combine) is not GradientWeighter.combine
]


@pytest.mark.parametrize("name", _COMBINING)
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), k=st.integers(1, 4), scale=st.floats(1e-4, 1e4))
def test_gradient_combination_scales_with_the_gradients(name, seed, k, scale):
    # combine(grads, losses) is positively homogeneous of degree 1: scaling
    # every task gradient by c > 0 scales the update direction by c.
    generator = torch.Generator().manual_seed(seed)
    grads = torch.randn(k, 12, generator=generator, dtype=torch.float64)
    losses = torch.rand(k, generator=generator, dtype=torch.float64)
    weighter = _prepared(name, _kinds(k))

    def direction(g, loss):
        with torch.random.fork_rng():  # pcgrad's random task order
            torch.manual_seed(seed)
            return weighter.combine(g, loss)

    expected = scale * direction(grads, losses)
    # CAGrad's weights come from SLSQP, which stops within its tolerance
    # (~1e-6 on the weights); before its Gram matrix was normalized, small
    # gradients stopped it at w = 1/K, off by O(1).
    tol = (1e-4 if name == "cagrad" else 1e-9) * float(expected.norm())
    torch.testing.assert_close(
        direction(scale * grads, scale * losses), expected, rtol=0, atol=tol
    )


# ------------------------------------------------ 5. seeded determinism
def _state(est):
    """Every tensor of the fitted net: module, loss weighter, optimizer."""
    net = _inner(est).net_
    tensors = {}
    for part in ("module_", "loss_weighter_"):
        for key, value in getattr(net, part).state_dict().items():
            tensors[f"{part}{key}"] = value
    for index, state in net.optimizer_.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"optimizer_{index}.{key}"] = torch.as_tensor(value)
    return tensors


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_a_seeded_fit_is_reproducible_and_the_seed_matters(cls):
    est = _instance(cls)
    X, y, X_test, _ = make_data(est, n_samples=N_SAMPLES)
    X_all = _all_rows(X, X_test)
    key = param_prefix(est) + "random_state"

    @settings(max_examples=2, deadline=None)
    @given(seed=st.integers(0, 2**31 - 2))
    def check(seed):
        first = clone(est).set_params(**{key: seed}).fit(X, y)
        again = clone(est).set_params(**{key: seed}).fit(X, y)
        np.testing.assert_array_equal(outputs(again, X_all), outputs(first, X_all))
        state, state_again = _state(first), _state(again)
        assert state.keys() == state_again.keys()
        for name, tensor in state.items():
            assert torch.equal(tensor, state_again[name]), name
        other = clone(est).set_params(**{key: seed + 1}).fit(X, y)
        assert not np.array_equal(outputs(other, X_all), outputs(first, X_all))
        state_other = _state(other)
        assert any(not torch.equal(t, state_other[n]) for n, t in state.items())

    check()
