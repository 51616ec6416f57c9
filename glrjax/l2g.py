"""L2G graph learning (Pu et al., NeurIPS 2021): the log-degree model and its unrolled network.

Given pairwise squared distances ``z`` of smooth graph signals (one entry per node pair
i < j, the upper triangle in row-major order, ``scipy.spatial.distance.squareform``'s
order), learn the edge weights ``w ≥ 0`` of an undirected graph (Kalofolias 2016)

    min_{w ≥ 0}  2wᵀz − α 1ᵀlog(Dw) + β‖w‖²

where ``D`` maps edge weights to node degrees. :func:`l2g` solves it by Condat–Vũ
primal-dual splitting (:func:`glrjax.primal_dual`) with f(w) = 2wᵀz + β‖w‖²,
g = indicator of w ≥ 0, h(v) = −α Σ log vᵢ (prox_{th}(v) = (v + √(v² + 4tα))/2) and
K = D, under any gradient mode. :func:`l2g_unrolled` is the same iteration with its own
step sizes, α and β at every layer, trained with optax in ``examples/l2g_learn.py``: the
counterpart of the "Unrolling" network of Pu et al., which unrolls a different
primal-dual method (Komodakis–Pesquet's, one step γ_t per layer) with learned γ_t, α_t, β_t.

Also here: numpy generators of the synthetic data of that paper (Erdős–Rényi,
Barabási–Albert and random geometric graphs with smooth GMRF signals) and the metrics
GMSE, edge F1 and edge AUC.

Scale: the solution of the model scales with α (w*(α, β) = α·w*(1, αβ)), so GMSE, which
is scale-sensitive, depends on α. We follow the paper's convention: the true weights are
normalised (Σ_{i≠j} W_ij = N, i.e. Σ w = N/2) and ŵ is compared as it is, so α (or a
trained network) has to get the scale right; :func:`gmse` can also report the error after
the best scalar rescaling of ŵ.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from glrjax import _krylov
from glrjax._validate import check_float_array, check_maxiter, check_nonnegative, check_positive
from glrjax.gradients import GradientMode, Implicit
from glrjax.iterate import Info
from glrjax.primal_dual import primal_dual, primal_dual_step

__all__ = [
    "L2GParams",
    "degrees",
    "distances",
    "edge_auc",
    "edge_f1",
    "gmse",
    "init_l2g_params",
    "l2g",
    "l2g_objective",
    "l2g_unrolled",
    "num_nodes",
    "random_graph",
    "synthetic_dataset",
    "to_matrix",
    "to_vector",
]


# ------------------------------------------------------------------------ edge vectors


def num_nodes(num_edges: int) -> int:
    """N such that N(N − 1)/2 = ``num_edges``; ValueError when there is none.

    >>> num_nodes(190)
    20
    """
    n = (1 + math.isqrt(1 + 8 * num_edges)) // 2
    if num_edges < 1 or n * (n - 1) // 2 != num_edges:
        raise ValueError(
            f"z has {num_edges} entries, which is not N(N-1)/2 for any N >= 2: pass the "
            "upper triangle of the N x N distance matrix as a vector "
            "(from glrjax.l2g import to_vector)."
        )
    return n


def _triu(n: int):
    return np.triu_indices(n, 1)


def to_vector(a) -> jax.Array:
    """The strict upper triangle of a (..., N, N) matrix as a (..., N(N−1)/2) vector.

    >>> to_vector(jnp.arange(9.0).reshape(3, 3)).tolist()
    [1.0, 2.0, 5.0]
    """
    a = jnp.asarray(a)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"to_vector needs square (..., N, N) matrices, got shape {a.shape}.")
    i, j = _triu(a.shape[-1])
    return a[..., i, j]


def to_matrix(w) -> jax.Array:
    """The symmetric (..., N, N) adjacency matrix of an edge vector (zero diagonal).

    >>> to_matrix(jnp.array([1.0, 2.0, 3.0])).tolist()
    [[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [2.0, 3.0, 0.0]]
    """
    w = jnp.asarray(w)
    n = num_nodes(w.shape[-1])
    i, j = _triu(n)
    a = jnp.zeros(w.shape[:-1] + (n, n), w.dtype)
    return a.at[..., i, j].set(w).at[..., j, i].set(w)


def degrees(w) -> jax.Array:
    """Node degrees Dw of an edge vector (linear in ``w``; leading axes are batch axes).

    >>> degrees(jnp.array([1.0, 2.0, 3.0])).tolist()
    [3.0, 4.0, 5.0]
    """
    n = num_nodes(w.shape[-1])
    i, j = _triu(n)
    d = jnp.zeros(w.shape[:-1] + (n,), w.dtype)
    return d.at[..., i].add(w).at[..., j].add(w)


def distances(x) -> jax.Array:
    """Mean pairwise squared distances z_ij = mean_k (x_ki − x_kj)² of signals ``x`` (M, N).

    Rows of ``x`` are M signals on N nodes; the result has N(N−1)/2 entries.

    >>> distances(jnp.array([[0.0, 1.0, 3.0], [0.0, 1.0, 1.0]])).tolist()
    [1.0, 5.0, 2.0]
    """
    x = check_float_array(x, "x")
    if x.ndim != 2:
        raise ValueError(f"x must be (signals, nodes), got shape {x.shape}.")
    x = x - jnp.mean(x, 1, keepdims=True)  # distances ignore a constant per signal
    s = _krylov.matmul(x.T, x) / x.shape[0]
    d = jnp.diag(s)
    return to_vector(d[:, None] + d[None, :] - 2 * s)


# ------------------------------------------------------------------------- the model


def l2g_objective(w, z, alpha, beta) -> jax.Array:
    """2wᵀz − α 1ᵀlog(Dw) + β‖w‖² (``inf`` where a degree is not positive).

    >>> round(float(l2g_objective(jnp.ones(3), jnp.ones(3), 1.0, 0.5)), 4)  # 7.5 - 3 log 2
    5.4206
    """
    d = degrees(w)
    logd = jnp.where(d > 0, jnp.log(jnp.where(d > 0, d, 1.0)), -jnp.inf)
    return 2 * jnp.vdot(w, z) - alpha * jnp.sum(logd) + beta * jnp.vdot(w, w)


def _check_z(z) -> tuple[jax.Array, int]:
    z = check_float_array(z, "z")
    # An infinite distance would just give its edge weight 0: treat it as bad input.
    z = jnp.where(jnp.isfinite(z), z, jnp.nan)
    if z.ndim != 1:
        hint = (
            " It looks like an N x N matrix: pass to_vector(z) (from glrjax.l2g import to_vector)."
            if z.ndim == 2 and z.shape[0] == z.shape[1]
            else " Use jax.vmap for a batch of problems."
        )
        raise ValueError(
            f"z must be a vector of the N(N-1)/2 pairwise distances, got shape {z.shape}.{hint}"
        )
    return z, num_nodes(z.shape[0])


def _degree_norm(n: int) -> float:
    # DDᵀ = (N − 2)I + 11ᵀ (the signless Laplacian of the complete graph): ‖D‖² = 2(N − 1).
    return math.sqrt(2.0 * (n - 1))


def _grad_f(w, p):
    z, _, beta = p
    return 2 * z + 2 * beta * w


def _prox_nonneg(v, p, t):
    return jnp.where((v > 0) | jnp.isnan(v), v, 0.0)  # NaN passes: never a finite-looking w


def _prox_neglog(v, p, t):
    # prox of t·h, h(v) = −α Σ log vᵢ: the positive root of u² − vu − tα = 0.
    alpha = p[1]
    return (v + jnp.sqrt(v * v + 4 * t * alpha)) / 2


def l2g(
    z,
    alpha,
    beta,
    *,
    w0=None,
    tau=None,
    sigma=None,
    tol=1e-6,
    maxiter: int = 1000,
    gradient: GradientMode = Implicit(),
) -> tuple[jax.Array, Info]:
    """Learn graph weights from distances: argmin_{w≥0} 2wᵀz − α 1ᵀlog(Dw) + β‖w‖².

    Solved by :func:`glrjax.primal_dual` (Condat–Vũ; K = D, exact ‖D‖ = √(2(N−1)),
    L = 2β), differentiable in ``z``, ``alpha`` and ``beta`` under any gradient mode.

    Args:
        z: (N(N−1)/2,) pairwise squared distances, upper triangle (see :func:`distances`).
            Use ``jax.vmap`` for a batch.
        alpha: α > 0, weight of the log-degree barrier (it sets the scale of w).
        beta: β ≥ 0, weight of ‖w‖² (larger: denser, more uniform weights).
        w0: starting edge weights (zeros by default; the dual starts at zero).
        tau, sigma: primal and dual steps (scalars or ``(maxiter,)`` schedules); default
            σ = 1/‖D‖, τ = 0.99/(‖D‖ + β).
        tol: stop when the relative change of (w, dual) in one step is <= tol.
        maxiter: maximum number of steps (static).
        gradient: gradient mode. The default, ``Implicit()``, runs a ``while_loop`` to
            ``tol``; ``Unrolled()`` always runs ``maxiter`` (frozen once converged) steps.

    Returns:
        ``(w, info)``: the (N(N−1)/2,) non-negative edge weights and an :class:`Info`.

    Example: two tight clusters {0, 1} and {2, 3}.

    >>> import jax.numpy as jnp
    >>> from glrjax.l2g import to_matrix
    >>> z = jnp.array([0.1, 4.0, 4.0, 4.0, 4.0, 0.1])  # pairs 01 02 03 12 13 23
    >>> w, info = l2g(z, 1.0, 0.1, tol=1e-10, maxiter=5000)
    >>> bool(info.converged), (to_matrix(w)[0, 1] > 10 * to_matrix(w)[0, 2]).item()
    (True, True)
    """
    z, n = _check_z(z)
    dtype = z.dtype
    check_positive(alpha, "alpha", "1.0")
    check_nonnegative(beta, "beta", "0.1")
    maxiter = check_maxiter(maxiter)
    alpha = jnp.asarray(alpha, dtype)
    beta = jnp.asarray(beta, dtype)
    if alpha.ndim or beta.ndim:
        raise ValueError(
            f"alpha and beta must be scalars, got shapes {alpha.shape} and {beta.shape}; "
            "use l2g_unrolled for per-layer values."
        )
    if w0 is None:
        w0 = jnp.zeros_like(z)
    else:
        w0 = check_float_array(w0, "w0").astype(dtype)
        if w0.shape != z.shape:
            raise ValueError(f"w0 has shape {w0.shape}; it must have z's shape {z.shape}.")
    sol, info = primal_dual(
        lambda w, p: degrees(w),
        w0,
        (z, alpha, beta),
        grad_f=_grad_f,
        prox_g=_prox_nonneg,
        prox_h=_prox_neglog,
        tau=tau,
        sigma=sigma,
        lipschitz=2 * beta,
        norm_K=_degree_norm(n),
        tol=tol,
        maxiter=maxiter,
        gradient=gradient,
    )
    return sol.x, info


# -------------------------------------------------------------------- unrolled network


class L2GParams(NamedTuple):
    """Per-layer parameters of :func:`l2g_unrolled`, each of shape (layers,)."""

    tau: jax.Array  # primal step τ_t
    sigma: jax.Array  # dual step σ_t
    alpha: jax.Array  # log-barrier weight α_t
    beta: jax.Array  # ‖w‖² weight β_t


def init_l2g_params(num_nodes: int, layers: int, alpha, beta, dtype=jnp.float32) -> L2GParams:
    """Parameters with which :func:`l2g_unrolled` is exactly ``layers`` steps of :func:`l2g`.

    >>> p = init_l2g_params(20, 3, 1.0, 0.5)
    >>> p.alpha.shape, round(float(p.sigma[0]), 4)
    ((3,), 0.1622)
    """
    layers = check_maxiter(layers, "layers")
    check_positive(alpha, "alpha", "1.0")
    check_nonnegative(beta, "beta", "0.1")
    knorm = _degree_norm(num_nodes)
    ones = jnp.ones((layers,), dtype)
    alpha = jnp.asarray(alpha, dtype) * ones
    beta = jnp.asarray(beta, dtype) * ones
    return L2GParams(tau=0.99 / (knorm + beta), sigma=ones / knorm, alpha=alpha, beta=beta)


def l2g_unrolled(z, params: L2GParams, *, all_layers: bool = False):
    """The unrolled L2G network: one Condat–Vũ step of :func:`l2g` per layer, each layer
    with its own τ_t, σ_t, α_t, β_t (a pure function; differentiate it with ``jax.grad``).

    Args:
        z: (N(N−1)/2,) pairwise squared distances (``jax.vmap`` for a batch).
        params: :class:`L2GParams` with arrays of shape (layers,).
        all_layers: also return every layer's output, shape (layers, N(N−1)/2) (for
            layer-wise losses).

    Returns:
        The edge weights after the last layer (and all layers' when ``all_layers``).

    >>> import jax.numpy as jnp
    >>> z = jnp.array([0.1, 4.0, 4.0, 4.0, 4.0, 0.1])
    >>> w = l2g_unrolled(z, init_l2g_params(4, 20, 1.0, 0.1, jnp.float64))
    >>> w_ref, _ = l2g(z, 1.0, 0.1, tol=0.0, maxiter=20)
    >>> bool(jnp.allclose(w, w_ref))
    True
    """
    z, n = _check_z(z)
    if not isinstance(params, L2GParams):
        raise TypeError(f"params must be an L2GParams, got {type(params).__name__}.")
    params = L2GParams(*(check_float_array(p, f"params.{k}") for k, p in params._asdict().items()))
    shapes = {p.shape for p in params}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(
            "params.tau, sigma, alpha and beta must all have shape (layers,), got "
            f"{[p.shape for p in params]}; see init_l2g_params."
        )
    for name in ("tau", "sigma", "alpha"):
        check_positive(getattr(params, name), f"params.{name}")
    check_nonnegative(params.beta, "params.beta")
    dtype = z.dtype
    params = L2GParams(*(p.astype(dtype) for p in params))
    w0 = jnp.zeros_like(z)
    y0 = jnp.zeros((n,), dtype)

    def layer(carry, p):
        w, y = carry
        tau, sigma, alpha, beta = p
        a = (z, alpha, beta)
        w, y = primal_dual_step(
            lambda v, _: degrees(v), w, y, a, tau, sigma, _grad_f, _prox_nonneg, _prox_neglog
        )
        return (w, y), (w if all_layers else None)

    (w, _), ws = lax.scan(layer, (w0, y0), tuple(params))
    return (w, ws) if all_layers else w


# --------------------------------------------------------------------------- metrics


def gmse(w_hat, w_true, *, rescale: bool = False) -> jax.Array:
    """Graph MSE ‖ŵ − w*‖²/‖w*‖² over the last axis (per problem for batches).

    ``rescale=True`` first multiplies ŵ by the least-squares scale c = ⟨ŵ, w*⟩/‖ŵ‖²
    (scale-free error); the paper's convention is ``rescale=False``.

    >>> float(gmse(jnp.array([1.0, 0.0]), jnp.array([2.0, 0.0])))
    0.25
    >>> float(gmse(jnp.array([1.0, 0.0]), jnp.array([2.0, 0.0]), rescale=True))
    0.0
    """
    w_hat, w_true = jnp.asarray(w_hat), jnp.asarray(w_true)
    if rescale:
        num = jnp.sum(w_hat * w_true, -1, keepdims=True)
        den = jnp.sum(w_hat * w_hat, -1, keepdims=True)
        w_hat = w_hat * jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)
    return jnp.sum((w_hat - w_true) ** 2, -1) / jnp.sum(w_true**2, -1)


def edge_f1(w_hat, w_true, threshold: float = 1e-4) -> float:
    """F1 score of the edges ŵ > threshold against the true edges w* > 0 (one graph).

    >>> edge_f1(np.array([0.5, 0.0, 0.2]), np.array([1.0, 0.0, 0.0]))
    0.6666666666666666
    """
    pred = np.asarray(w_hat) > threshold
    true = np.asarray(w_true) > 0
    tp = np.sum(pred & true)
    denom = 2 * tp + np.sum(pred & ~true) + np.sum(~pred & true)
    return float(2 * tp / denom) if denom else 1.0


def edge_auc(w_hat, w_true) -> float:
    """Area under the ROC curve of the scores ŵ for the true edges w* > 0 (one graph).

    The Mann–Whitney statistic: the probability that a true edge outscores a non-edge,
    ties counting one half.

    >>> edge_auc(np.array([0.9, 0.1, 0.5, 0.5]), np.array([1.0, 0.0, 1.0, 0.0]))
    0.875
    """
    s = np.asarray(w_hat, np.float64)
    y = np.asarray(w_true) > 0
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


# ----------------------------------------------------------------------- synthetic data

FAMILIES = ("ER", "BA", "RG")


def _connected(a: np.ndarray) -> bool:
    n = a.shape[0]
    seen = np.zeros(n, bool)
    seen[0] = True
    frontier = [0]
    while frontier:
        nxt = np.nonzero(a[frontier].any(0) & ~seen)[0]
        seen[nxt] = True
        frontier = list(nxt)
    return bool(seen.all())


def random_graph(family: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random connected graph's 0/1 adjacency matrix (numpy; no networkx).

    - ``"ER"``: Erdős–Rényi, edge probability 0.2.
    - ``"BA"``: Barabási–Albert, each new node attaches to m = 3 existing nodes with
      probability proportional to degree, from a star on m + 1 nodes (the paper's m).
    - ``"RG"``: random geometric, N points uniform in the unit square, edges between
      points closer than 0.35.

    ER and RG graphs are redrawn until connected (BA graphs always are).

    >>> a = random_graph("BA", 20, np.random.default_rng(0))
    >>> a.shape, int(a.sum()) // 2, bool((a == a.T).all())
    ((20, 20), 51, True)
    """
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} must be one of {FAMILIES}.")
    if n < 4:
        raise ValueError(f"n={n} must be >= 4.")
    for _ in range(1000):
        a = np.zeros((n, n), bool)
        if family == "ER":
            a[_triu(n)] = rng.uniform(size=n * (n - 1) // 2) < 0.2
        elif family == "RG":
            p = rng.uniform(size=(n, 2))
            a = np.sum((p[:, None] - p[None]) ** 2, -1) < 0.35**2
            a[np.diag_indices(n)] = False
        else:
            m = 3
            a[0, 1 : m + 1] = True
            a = a | a.T
            for v in range(m + 1, n):
                deg = a[:v, :v].sum(1).astype(float)
                targets = rng.choice(v, size=m, replace=False, p=deg / deg.sum())
                a[v, targets] = True
                a[targets, v] = True
        a = a | a.T
        if _connected(a):
            return a.astype(np.float64)
    raise RuntimeError(f"no connected {family} graph with {n} nodes in 1000 draws.")


def synthetic_dataset(
    family: str,
    num_graphs: int,
    n: int = 20,
    num_signals: int = 3000,
    *,
    noise: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (z, w*) as in Pu et al. (their released ``utils_data.py``), in numpy float64.

    For each graph: a :func:`random_graph`, edge weights log-normal(0, 0.1) symmetrised,
    scaled so that Σ_{i≠j} W_ij = N; ``num_signals`` signals x ~ N(0, (L + 10⁻⁴I)⁻¹) (the
    graph's GMRF), plus N(0, noise²) noise; z = :func:`distances` of the signals.

    Returns:
        ``z`` and ``w_true``, both (num_graphs, N(N−1)/2).

    >>> z, w = synthetic_dataset("BA", 2, 10, 100)
    >>> z.shape, w.shape, bool(np.allclose(w.sum(1), 5.0))
    ((2, 45), (2, 45), True)
    """
    if num_graphs < 1:
        raise ValueError(f"num_graphs={num_graphs} must be >= 1.")
    rng = np.random.default_rng(seed)
    zs, ws = [], []
    for _ in range(num_graphs):
        a = random_graph(family, n, rng)
        weights = rng.lognormal(0.0, 0.1, (n, n))
        wmat = a * (weights + weights.T) / 2
        wmat *= n / wmat.sum()
        lap = np.diag(wmat.sum(1)) - wmat
        evals, evecs = np.linalg.eigh(lap + 1e-4 * np.eye(n))
        x = rng.standard_normal((num_signals, n)) / np.sqrt(evals) @ evecs.T
        x = x + noise * rng.standard_normal(x.shape)
        x -= x.mean(1, keepdims=True)  # the GMRF's near-constant mode (variance 10⁴) cancels
        s = x.T @ x / num_signals
        d = np.diag(s)
        zs.append((d[:, None] + d[None] - 2 * s)[_triu(n)])
        ws.append(wmat[_triu(n)])
    return np.stack(zs), np.stack(ws)
