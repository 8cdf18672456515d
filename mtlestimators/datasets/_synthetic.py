"""Synthetic multi-task data with controllable task correlation.

Follows MMoE (Ma et al., KDD 2018, section 3.2).
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state


def make_multitask_classification(
    n_samples: int = 10_000,
    n_features: int = 100,
    n_tasks: int = 2,
    task_correlation: float = 0.5,
    *,
    scale: float = 1.0,
    n_sinusoids: int = 10,
    noise: float = 0.1,
    return_regression: bool = False,
    random_state=None,
):
    """Binary multi-task data whose tasks are correlated by ``task_correlation``.

    The MMoE construction (Ma et al. 2018, section 3.2):

    1. orthonormal vectors ``u_1 .. u_K`` in R^d (QR of a Gaussian matrix);
    2. ``w_1 = c u_1`` and ``w_k = c (p u_1 + sqrt(1 - p^2) u_k)`` for k >= 2,
       so ``cos(w_1, w_k) = p`` (and ``p^2`` between two tasks k, j >= 2);
    3. ``x ~ N(0, I_d)``;
    4. ``y_k = w_k . x + sum_{i=1..m} sin(alpha_i w_k . x + beta_i) + eps_k``;
    5. each ``y_k`` is binarized at its median (the issue's protocol; MMoE
       itself regresses on ``y_k``).

    Constants: ``c = scale = 1``, ``m = n_sinusoids = 10``, ``alpha_i`` and
    ``beta_i`` drawn once from N(0, 1) and shared by all tasks (MMoE calls
    them "given parameters"; it does not state their values; here they are
    drawn from ``random_state`` before anything else, so each seed is a
    different nonlinear function and an unlucky draw can flatten it: at
    p = 1 the two label columns agree on 87% to 99% of rows across seeds
    0-9), and
    ``eps_k ~ N(0, noise^2)`` with ``noise = 0.1`` (MMoE's N(0, 0.01) read as
    a variance).

    Parameters
    ----------
    n_samples, n_features, n_tasks : int
        ``n_tasks`` must not exceed ``n_features``.
    task_correlation : float in [-1, 1]
        The cosine ``p`` between the tasks' weight vectors.
    scale, n_sinusoids, noise : see above.
    return_regression : bool, default=False
        Also return the continuous targets before binarization.
    random_state : int, RandomState or None

    Returns
    -------
    X : ndarray (n_samples, n_features), float32
    Y : ndarray (n_samples, n_tasks), int64 in {0, 1}
    Y_continuous : ndarray (n_samples, n_tasks), only with ``return_regression``

    Examples
    --------
    >>> from mtlestimators.datasets import make_multitask_classification
    >>> X, Y = make_multitask_classification(200, 10, 2, 0.9, random_state=0)
    >>> X.shape, Y.shape, sorted(set(Y.ravel().tolist()))
    ((200, 10), (200, 2), [0, 1])
    """
    if not -1.0 <= task_correlation <= 1.0:
        raise ValueError(
            f"task_correlation must be in [-1, 1], got {task_correlation!r}."
        )
    if not 1 <= n_tasks <= n_features:
        raise ValueError(
            f"n_tasks must be between 1 and n_features ({n_features}) to have "
            f"orthogonal task directions; got n_tasks={n_tasks!r}."
        )
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples!r}.")
    rng = check_random_state(random_state)
    # Drawn first, so the shape of the sinusoids depends on the seed only.
    alpha = rng.normal(size=n_sinusoids)
    beta = rng.normal(size=n_sinusoids)
    basis, _ = np.linalg.qr(rng.normal(size=(n_features, n_tasks)))
    u = basis.T  # (K, d), orthonormal rows
    p = float(task_correlation)
    weights = np.empty_like(u)
    weights[0] = scale * u[0]
    for k in range(1, n_tasks):
        weights[k] = scale * (p * u[0] + np.sqrt(1.0 - p * p) * u[k])
    X = rng.normal(size=(n_samples, n_features))
    linear = X @ weights.T  # (n, K)
    waves = np.sin(linear[:, :, None] * alpha + beta).sum(axis=2)  # (n, K)
    y = linear + waves + noise * rng.normal(size=linear.shape)
    Y = (y > np.median(y, axis=0)).astype(np.int64)
    X = X.astype(np.float32)
    if return_regression:
        return X, Y, y
    return X, Y
