"""Gradient-level weighters: each method's defining property, and their use
by name through the plugin registry."""

import itertools

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, KFold

from mtlestimators import SharedBottomClassifier
from mtlestimators.plugins import available_loss_weighters, list_plugins

plugin = pytest.importorskip(
    "mtl_gradient_weighters",
    reason="install the plugin: pip install -e plugins/gradient_weighters",
)
NAMES = (
    "pcgrad",
    "mgda",
    "gradnorm",
    "cagrad",
    "upgrad",
    "imtl_g",
    "aligned_mtl",
    "dualproj",
    "mgda_params",
)


def test_found_by_name_from_their_own_distribution():
    assert set(NAMES) <= set(available_loss_weighters())
    for info in list_plugins():
        if info.name in NAMES:
            assert info.distribution == "mtlestimators-gradient-weighters"


def test_pcgrad_projected_gradients_do_not_conflict():
    # g1 . g2 = -1 < 0: g1 -> g1 + g2 / 2 = (0.5, 0.5), g2 -> g2 + g1 = (0, 1)
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    direction = plugin.PCGrad(2).combine(g, torch.zeros(2))
    torch.testing.assert_close(direction, torch.tensor([0.5, 1.5]))
    agreeing = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # no conflict: the sum
    torch.testing.assert_close(
        plugin.PCGrad(2).combine(agreeing, torch.zeros(2)), agreeing.sum(dim=0)
    )


def _reference_pcgrad(grads):
    """Algorithm 1 of Yu et al. as the plugin wrote it before TorchJD backed
    it: one torch.randperm(K) per task, projections on the original g_j."""
    projected = grads.clone()
    K = len(grads)
    for i in range(K):
        for j in torch.randperm(K).tolist():
            if j == i:
                continue
            dot = projected[i] @ grads[j]
            if dot < 0:
                projected[i] -= dot / (grads[j] @ grads[j]) * grads[j]
    return projected.sum(dim=0)


@pytest.mark.parametrize("seed", range(5))
def test_torchjd_pcgrad_equals_the_hand_written_one(seed):
    generator = torch.Generator().manual_seed(seed)
    K = 2 + seed % 3
    grads = torch.randn(K, 30, generator=generator, dtype=torch.float64)
    torch.manual_seed(seed)
    expected = _reference_pcgrad(grads)
    torch.manual_seed(seed)  # the same task orders
    got = plugin.PCGrad(K).combine(grads, torch.zeros(K))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-8)


def _reference_cagrad(grads, c):
    """The CAGrad dual solved tightly with SLSQP, K d / (1 + c^2)."""
    from scipy.optimize import minimize

    G = grads.numpy()
    K = len(G)
    gram = G @ G.T
    b, radius = gram.mean(axis=1), c * np.sqrt(gram.mean())
    result = minimize(
        lambda w: w @ b + radius * np.sqrt(max(w @ gram @ w, 0.0)),
        np.full(K, 1.0 / K),
        bounds=[(0.0, 1.0)] * K,
        constraints={"type": "eq", "fun": lambda w: w.sum() - 1.0},
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    gw = result.x @ G
    d = G.mean(axis=0) + radius / np.linalg.norm(gw) * gw
    return torch.from_numpy(K * d / (1 + c**2))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("c", [0.2, 0.5, 1.0])
def test_torchjd_cagrad_solves_the_same_dual(seed, c):
    # The hand-written version (SLSQP at its default tolerance) was within
    # ~1e-3 of this tight solution; TorchJD's Clarabel solve is within 1e-4.
    generator = torch.Generator().manual_seed(seed)
    K = 3 + seed % 2
    grads = torch.randn(K, 40, generator=generator, dtype=torch.float64)
    expected = _reference_cagrad(grads, c)
    got = plugin.CAGrad(K, c=c).combine(grads, torch.zeros(K))
    assert float((got - expected).abs().max()) <= 1e-4 * float(expected.abs().max())
    # small gradients: the same direction, scaled (TorchJD's absolute
    # thresholds are kept out by the adapter's normalization)
    small = plugin.CAGrad(K, c=c).combine(1e-6 * grads, torch.zeros(K))
    torch.testing.assert_close(small, 1e-6 * got, rtol=1e-4, atol=0)


def test_mgda_params_is_the_parameter_space_min_norm_point():
    G3 = np.array([[1.0, 0.2, 0.0], [-0.3, 1.0, 0.5], [0.1, -0.4, 1.2]])
    w3 = plugin.min_norm_weights(G3 @ G3.T)
    direction = plugin.MGDAParams(3).combine(torch.tensor(G3), torch.zeros(3))
    torch.testing.assert_close(
        direction, torch.tensor(3 * (w3 @ G3)), rtol=1e-6, atol=1e-8
    )


def test_adapter_rejects_an_unknown_aggregator():
    with pytest.raises(ValueError, match="must name an Aggregator"):
        plugin.TorchJDWeighter(2, aggregator="NoSuchThing")
    with pytest.raises(ValueError, match="c must be a number >= 0"):
        plugin.CAGrad(2, c=-1)


@pytest.mark.parametrize("name", ["upgrad", "dualproj", "imtl_g", "aligned_mtl"])
def test_torchjd_methods_do_not_conflict_with_agreeing_tasks(name):
    # Non-conflicting gradients of equal norm: every one of these methods
    # gives K' times their mean, i.e. the plain sum.
    g = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    cls = plugin.__dict__[
        {
            "upgrad": "UPGrad",
            "dualproj": "DualProj",
            "imtl_g": "IMTLG",
            "aligned_mtl": "AlignedMTL",
        }[name]
    ]
    direction = cls(2).combine(g, torch.zeros(2))
    torch.testing.assert_close(direction, g.sum(dim=0), rtol=1e-4, atol=1e-6)
    # UPGrad / DualProj: no task's loss increases to first order on conflict
    conflict = torch.tensor([[1.0, 0.0], [-0.9, 0.5]], dtype=torch.float64)
    d = cls(2).combine(conflict, torch.zeros(2))
    if name in ("upgrad", "dualproj"):
        assert (conflict @ d).min() >= -1e-6


def _brute_force_min_norm(G, steps=200):
    best, best_w = np.inf, None
    K = len(G)
    grid = np.linspace(0, 1, steps + 1)
    for w in itertools.product(grid, repeat=K - 1):
        if sum(w) > 1 + 1e-12:
            continue
        full = np.array([*w, 1 - sum(w)])
        value = np.sum((full @ G) ** 2)
        if value < best:
            best, best_w = value, full
    return best, best_w


def test_mgda_is_the_min_norm_point_of_the_convex_hull():
    G = np.array([[1.0, 0.0], [0.0, 2.0]])
    w = plugin.min_norm_weights(G @ G.T)
    np.testing.assert_allclose(w, [0.8, 0.2])  # point (0.8, 0.4)
    G3 = np.array([[1.0, 0.2, 0.0], [-0.3, 1.0, 0.5], [0.1, -0.4, 1.2]])
    w3 = plugin.min_norm_weights(G3 @ G3.T)
    best, _ = _brute_force_min_norm(G3, steps=100)
    assert np.sum((w3 @ G3) ** 2) <= best + 1e-6
    assert w3.min() >= -1e-12 and w3.sum() == pytest.approx(1.0)
    direction = plugin.MGDA(3).combine(torch.tensor(G3), torch.zeros(3))
    torch.testing.assert_close(direction, torch.tensor(3 * (w3 @ G3)))


def test_cagrad_improves_the_worst_task_within_its_ball():
    g = torch.tensor([[1.0, 0.1], [-0.8, 0.3]], dtype=torch.float64)
    g0 = g.mean(dim=0)
    assert plugin.CAGrad(2, c=0.0).combine(g, torch.zeros(2)).allclose(2 * g0)
    c = 0.5
    d = plugin.CAGrad(2, c=c).combine(g, torch.zeros(2)) * (1 + c**2) / 2
    assert (d - g0).norm() <= c * g0.norm() + 1e-6
    assert (g @ d).min() > (g @ g0).min()


def test_gradnorm_moves_gradient_norms_toward_the_targets():
    # alpha = 0: the target is the same norm for every task. Task 1's loss
    # is 10 times task 0's scale, so its gradient norm starts ~10x larger.
    torch.manual_seed(0)
    X = torch.randn(256, 4)
    shared = torch.nn.Linear(4, 8)
    heads = torch.nn.ModuleList(torch.nn.Linear(8, 1) for _ in range(2))
    weighter = plugin.GradNorm(2, alpha=0.0)
    optimizer = torch.optim.SGD(weighter.parameters(), lr=0.003)
    ratios = []
    for _ in range(100):
        optimizer.zero_grad()
        h = shared(X)
        losses = torch.stack(
            [heads[0](h).pow(2).mean(), 10 * heads[1](h).pow(2).mean()]
        )
        weighter.combine_gradients(
            losses,
            shared_parameters=list(shared.parameters()),
            task_parameters=list(heads.parameters()),
            labelled=torch.tensor([True, True]),
            regularization=torch.zeros(()),
        )
        w = weighter.weights.detach()
        G = [
            w[k]
            * torch.autograd.grad(losses[k], shared.weight, retain_graph=True)[0].norm()
            for k in range(2)
        ]
        ratios.append(float(G[1] / G[0]))
        optimizer.step()
    assert ratios[0] > 3
    # the norms end up close (L1 steps oscillate around the target)
    assert np.median(np.abs(np.log(ratios[-30:]))) < 0.3 * abs(np.log(ratios[0]))
    assert weighter.weights.detach().sum().item() == pytest.approx(2.0, rel=0.05)


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(600, 6)).astype("float32")
    Y = np.column_stack([X[:, 0] + X[:, 1] > 0, X[:, 0] - X[:, 2] > 0]).astype(float)
    Y[rng.rand(600) < 0.2, 1] = np.nan
    return X, Y


@pytest.mark.parametrize("name", NAMES)
def test_trains_a_model_by_name(data, name):
    X, Y = data
    model = SharedBottomClassifier(
        loss_weighter=name, max_epochs=8, verbose=0, random_state=0
    ).fit(X[:450], Y[:450])
    assert model.score(X[450:], Y[450:]) > 0.85
    # a trivial baseline: each task's majority class on the held-out rows
    held = Y[450:]
    majority = np.nanmean([max(np.nanmean(c), 1 - np.nanmean(c)) for c in held.T])
    assert model.score(X[450:], Y[450:]) > majority + 0.2
    if name == "mgda":  # MGDA-UB ran on SharedBottom's representation
        weights = model.net_.loss_weighter_.last_weights
        assert weights.sum().item() == pytest.approx(1.0, rel=1e-5)


def test_grid_search_over_plugin_names(data):
    X, Y = data
    grid = GridSearchCV(
        SharedBottomClassifier(max_epochs=4, verbose=0, random_state=0),
        {"loss_weighter": ["uniform", "pcgrad", "cagrad"]},
        cv=KFold(2, shuffle=True, random_state=0),
        error_score="raise",
    ).fit(X, Y)
    assert grid.best_params_["loss_weighter"] in {"uniform", "pcgrad", "cagrad"}
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
