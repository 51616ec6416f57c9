"""Group-ℓ2,1 linear reconstruction: choose the inputs of a linear layer (seed 003).

Given correlations Rxx = E[x xᵀ] (d×d) and Ryx = E[y xᵀ] (h×d) of a layer's inputs x and
targets y (e.g. y = W x, the layer's own outputs),

    min_M  ½ tr(M Rxx Mᵀ) − tr(Ryx Mᵀ) + λ Σ_j w_j ‖M_:j‖₂,

which is E ½‖y − M x‖² up to a constant, with a group penalty on the columns of M: a zero
column j means input j is not needed — for a hidden layer, neuron j of the previous layer
can be removed and its row of the previous weight matrix dropped. ``bias=True`` treats the
last column as the bias (x has a trailing 1) and leaves it unpenalized (w_d = 0).

Methods: ``"pgd"`` and ``"fista"`` (:mod:`glrjax.proximal` with the :func:`~glrjax.prox.
group_l21` prox and step 1/λ_max(Rxx)), and ``"altmin"``: a few ε-smoothed iteratively
reweighted least-squares steps on the variational form ‖m‖ = min_η ‖m‖²/(2η) + η/2
(Bach et al. 2012), η_j = √(‖M_:j‖² + ε), M = Ryx (Rxx + λ diag(w/η))⁻¹ — one factorization,
then Richardson steps preconditioned by it while η stays close (one matrix product each),
until the proximal-gradient step from the iterate (whose gradient IRLS gives for free)
passes ``tol`` — then that prox step, and a FISTA polish with adaptive restart only if
IRLS stopped short. Columns can be replaced by any partition into groups (``groups=``,
e.g. the channels of a convolution; :func:`conv_patches`). Every method is
differentiable with respect to λ, Rxx and Ryx under every gradient mode.

    >>> import jax.numpy as jnp, glrjax
    >>> Rxx = jnp.eye(3)
    >>> Ryx = jnp.array([[3.0, 0.1, 0.0], [4.0, 0.0, 1.0]])  # column norms 5, 0.1, 1
    >>> M, info = glrjax.linear_reconstruction(Rxx, Ryx, 0.5, tol=1e-10)
    >>> glrjax.support(M).tolist()  # with Rxx = I the solution is group_l21(Ryx, λ)
    [True, False, True]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from glrjax import _krylov
from glrjax._eager import cached, validated
from glrjax._validate import (
    _concrete_array,
    check_float_array,
    check_maxiter,
    check_nonnegative,
    check_positive,
    check_tol,
    dtype_tol,
)
from glrjax.gradients import GradientMode, Implicit, check_gradient
from glrjax.implicit import implicit_solve
from glrjax.iterate import Info
from glrjax.prox import _group_scale, group_l21, group_norms
from glrjax.proximal import (
    _check_q,
    _common_scale,
    _optimality,
    _relative_change,
    _run_fista,
    fista,
    pgd,
)
from glrjax.results import RESULTS

__all__ = [
    "conv_patches",
    "correlations",
    "debias",
    "lambda_max",
    "lambda_path",
    "linear_reconstruction",
    "reconstruction_objective",
    "support",
]

METHODS = ("pgd", "fista", "altmin")
POWER_ITERATIONS = 100  # power iterations on Rxx (vector products: cheap) for the step 1/L
LIPSCHITZ_SAFETY = 1.01


# ----------------------------------------------------------------------------- validation
def _check_correlations(Rxx, Ryx):
    Rxx = check_float_array(Rxx, "Rxx")
    Ryx = check_float_array(Ryx, "Ryx")
    if Rxx.ndim != 2 or Rxx.shape[0] != Rxx.shape[1]:
        raise ValueError(f"Rxx has shape {Rxx.shape}; it must be a square (d, d) matrix E[x xᵀ].")
    if Ryx.ndim != 2 or Ryx.shape[1] != Rxx.shape[0]:
        raise ValueError(
            f"Ryx has shape {Ryx.shape} but Rxx has shape {Rxx.shape}; Ryx = E[y xᵀ] must be "
            f"(h, d) with d = {Rxx.shape[0]} columns, one per input of Rxx."
        )
    if Rxx.dtype != Ryx.dtype:
        raise TypeError(
            f"Rxx has dtype {Rxx.dtype} but Ryx has dtype {Ryx.dtype}; cast both to one "
            "floating dtype."
        )
    for name, value in (("Rxx", Rxx), ("Ryx", Ryx)):
        v = _concrete_array(value)
        if v is not None and v.size and not np.all(np.isfinite(v)):
            bad = int(np.size(v) - np.count_nonzero(np.isfinite(v)))
            raise ValueError(
                f"{name} has {bad} NaN or infinite entries; correlations must be finite. Check "
                "the data and the network that produced them (e.g. with jnp.isfinite)."
            )
    r = _concrete_array(Rxx)
    if r is not None and r.size:
        r = r.astype(np.float64)
        asym = np.abs(r - r.T).max()
        scale = np.abs(r).max()
        if not asym <= 1e3 * np.finfo(Rxx.dtype).eps * max(scale, np.finfo(np.float64).tiny):
            raise ValueError(
                f"Rxx is not symmetric (max |Rxx - Rxxᵀ| = {asym:.3g} for entries up to "
                f"{scale:.3g}); it must be a correlation matrix E[x xᵀ]. Symmetrize it, e.g. "
                "(Rxx + Rxx.T) / 2."
            )
    return Rxx, Ryx


def _check_lam(lam, dtype):
    lam = check_float_array(lam, "lam")
    if lam.ndim:
        raise ValueError(f"lam has shape {lam.shape}; it must be a scalar λ >= 0, e.g. lam=0.1.")
    check_nonnegative(lam, "lam", "0.1")
    return lam.astype(dtype)


def _group_weights(lam, num: int, bias: bool):
    """λ·w_g per group: λ, or 0 on the bias group (the last) when ``bias``."""
    if not bias:
        return lam
    return lam * jnp.ones((num,), lam.dtype).at[-1].set(0.0)


@dataclasses.dataclass(frozen=True)
class _Partition:
    """A static partition of the d columns of M into groups (hashable: it is static).

    ``segment[j]`` is the group of column j; ``None`` means one group per column (the
    column case, computed without any gather). With ``bias`` the bias column is the last
    group, alone. All three methods, the objective, λ_max and the support read the groups
    through :meth:`norms` (one Euclidean norm per group) and :meth:`expand` (a per-group
    value repeated on the group's columns).
    """

    segment: tuple[int, ...] | None  # group index of each column, or None: columns
    num: int  # number of groups (including the bias group)

    def norms(self, M):
        """‖M_:g‖_F per group, with a finite gradient at zero groups."""
        if self.segment is None:
            return group_norms(M, axis=0)
        return _root(self.squares(M))

    def squares(self, M):
        """‖M_:g‖²_F per group."""
        sq = jnp.sum(M * M, axis=0)
        if self.segment is None:
            return sq
        return jax.ops.segment_sum(
            sq, jnp.asarray(self.segment), self.num, indices_are_sorted=False
        )

    def expand(self, v):
        """A (num,) per-group value as a (d,) per-column value (scalars pass through)."""
        v = jnp.asarray(v)
        if self.segment is None or not v.ndim:
            return v
        return v[jnp.asarray(self.segment)]

    def sizes(self):
        """Columns per group, (num,)."""
        if self.segment is None:
            return np.ones(self.num, np.int64)
        return np.bincount(np.asarray(self.segment), minlength=self.num)

    def value(self, M, lamw):
        """λ Σ_g w_g ‖M_:g‖."""
        return jnp.sum(jnp.asarray(lamw, M.dtype) * self.norms(M))

    def __call__(self, M, lamw, t=1.0):
        """The prox of t·λ Σ_g w_g ‖M_:g‖: M_:g · max(0, 1 − tλw_g/‖M_:g‖) (``group_l21``
        for columns; the same guarded formula per group otherwise)."""
        if self.segment is None:
            return group_l21(M, lamw, t)
        return M * self.expand(self.scale(self.norms(M), lamw, t))[None, :]

    @staticmethod
    def scale(norms, lamw, t):
        """The prox's factor per group from the group norms: 1 − tλw/max(‖M_:g‖, tλw)."""
        return _group_scale(norms, jnp.asarray(t, norms.dtype) * jnp.asarray(lamw, norms.dtype))


def _root(sq):
    """√sq with a finite gradient at 0."""
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _partition(groups, d: int, bias: bool) -> _Partition:
    """Validate ``groups`` (a partition of the d − bias non-bias columns) into a _Partition."""
    if groups is None:
        return _Partition(None, d)
    n_in = d - int(bias)
    what = f"the {n_in} input columns" + (" (the bias column excluded)" if bias else "")
    if isinstance(groups, (str, bytes)) or not isinstance(groups, (Sequence, np.ndarray)):
        raise TypeError(
            f"groups must be a sequence of index sequences partitioning {what}, e.g. "
            f"groups=np.arange({n_in}).reshape(-1, k) for contiguous groups of k; got "
            f"{type(groups).__name__}."
        )
    segment = np.full(n_in, -1, np.int64)
    for g, idx in enumerate(groups):
        idx = np.asarray(idx)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise TypeError(
                f"groups[{g}] must be a 1-D sequence of integer column indices; got "
                f"{idx.dtype} of shape {idx.shape}."
            )
        if idx.size == 0:
            raise ValueError(f"groups[{g}] is empty; every group needs at least one column.")
        if idx.min() < 0 or idx.max() >= n_in:
            raise ValueError(
                f"groups[{g}] has column indices outside [0, {n_in}); groups partition {what}."
            )
        if len(np.unique(idx)) != idx.size or np.any(segment[idx] >= 0):
            first = next(int(j) for j in idx if segment[j] >= 0 or np.sum(idx == j) > 1)
            other = int(segment[first])
            where = f"groups[{other}] and groups[{g}]" if other >= 0 else f"groups[{g}] twice"
            raise ValueError(
                f"groups overlap: column {first} is in {where}; each column must be in exactly "
                "one group."
            )
        segment[idx] = g
    if np.any(segment < 0):
        missing = np.flatnonzero(segment < 0)
        raise ValueError(
            f"groups do not cover {what}: {missing.size} columns are in no group (first: "
            f"{missing[:5].tolist()}); put each in a group (a group of its own is allowed)."
        )
    num = len(groups)
    if bias:
        segment = np.append(segment, num)
        num += 1
    return _Partition(tuple(int(g) for g in segment), num)


# ----------------------------------------------------------------------------- the problem
def reconstruction_objective(M, Rxx, Ryx, lam, *, bias: bool = False, groups=None):
    """½ tr(M Rxx Mᵀ) − tr(Ryx Mᵀ) + λ Σ_g ‖M_:g‖ (the bias column unpenalized if ``bias``).

    The groups g are the columns, or ``groups`` (see :func:`linear_reconstruction`).

    >>> import jax.numpy as jnp
    >>> float(reconstruction_objective(jnp.ones((1, 2)), jnp.eye(2), jnp.zeros((1, 2)), 1.0))
    3.0
    >>> float(reconstruction_objective(jnp.ones((1, 2)), jnp.eye(2), jnp.zeros((1, 2)), 1.0,
    ...                                groups=[[0, 1]]))  # ½·2 + ‖(1, 1)‖
    2.414213562373095
    """
    part = _partition(groups, M.shape[-1], bias)
    lamw = _group_weights(jnp.asarray(lam, M.dtype), part.num, bias)
    return 0.5 * jnp.sum(_krylov.matmul(M, Rxx) * M) - jnp.sum(Ryx * M) + part.value(M, lamw)


def _grad_f(M, corr):
    Rxx, Ryx = corr
    return _krylov.matmul(M, Rxx) - Ryx


def _lipschitz(Rxx):
    """λ_max(Rxx) by power iteration with vectors (under stop_gradient)."""
    Rxx = lax.stop_gradient(Rxx)
    v = jnp.ones((Rxx.shape[0],), Rxx.dtype) + 0.01 * jnp.arange(Rxx.shape[0], dtype=Rxx.dtype)
    v = v / _krylov.norm(v)

    def body(_, v):
        w = _krylov.matmul(Rxx, v)
        return _krylov.safe_div(w, _krylov.norm(w))

    v = lax.fori_loop(0, POWER_ITERATIONS, body, v)
    return LIPSCHITZ_SAFETY * _krylov.norm(_krylov.matmul(Rxx, v))


def support(M, *, bias: bool = False, groups=None):
    """Boolean (d,) mask of the kept columns of M: those of the nonzero groups (the columns,
    or ``groups``); the bias column is kept.

    >>> import jax.numpy as jnp
    >>> support(jnp.array([[1.0, 0.0, 0.0]]), bias=True).tolist()
    [True, False, True]
    >>> support(jnp.array([[1.0, 0.0, 0.0, 0.0]]), groups=[[0, 1], [2, 3]]).tolist()
    [True, True, False, False]
    """
    part = _partition(groups, M.shape[-1], bias)
    keep = part.expand(part.norms(M) > 0)
    return keep.at[-1].set(True) if bias else keep


def lambda_max(Rxx, Ryx, *, bias: bool = False, groups=None):
    """The smallest λ for which M = 0 (but for the bias column) is the solution.

    Without bias, max_j ‖Ryx_:j‖ (the gradient at M = 0; with ``groups``, the largest
    group norm ‖Ryx_:g‖_F). With ``bias``, the bias column m = Ryx_:d / Rxx_dd is fitted
    first and λ_max = max_{j<d} ‖m Rxx_dj − Ryx_:j‖ (per group likewise).

    >>> import jax.numpy as jnp
    >>> float(lambda_max(jnp.eye(2), jnp.array([[3.0, 1.0], [4.0, 0.0]])))
    5.0
    """
    Rxx, Ryx = _check_correlations(Rxx, Ryx)
    part = _partition(groups, Rxx.shape[0], bias)
    if not bias:
        return jnp.max(part.norms(Ryx))
    m = Ryx[:, -1:] / Rxx[-1, -1]
    g = m * Rxx[-1:, :] - Ryx
    return jnp.max(part.norms(g)[:-1])


# ----------------------------------------------------------------------------- solvers
SCHUR_BLOCK = 32  # leaf size of the recursive SPD inverse
REFACTOR_ABOVE = 0.5  # IRLS re-factors when a frozen-factor step would contract less


def _spd_inverse(K):
    """K⁻¹ for a symmetric positive definite K by recursive 2×2 Schur complements.

    For K = [[A, Bᵀ], [B, C]], S = C − B A⁻¹ Bᵀ (SPD) and K⁻¹ = [[A⁻¹ + A⁻¹BᵀS⁻¹BA⁻¹,
    −A⁻¹BᵀS⁻¹], [−S⁻¹BA⁻¹, S⁻¹]]: block Cholesky in disguise, stable for SPD K. Nearly all
    flops are matrix products; leaves of size ≤ 32 use a Cholesky solve.
    """
    d = K.shape[0]
    if d <= SCHUR_BLOCK:
        return jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(K), jnp.eye(d, dtype=K.dtype))
    k = d // 2
    a_inv = _spd_inverse(K[:k, :k])
    b = K[k:, :k]
    b_a_inv = b @ a_inv
    s = K[k:, k:] - b_a_inv @ b.T
    s_inv = _spd_inverse(0.5 * (s + s.T))
    x = s_inv @ b_a_inv
    return jnp.block([[a_inv + b_a_inv.T @ x, -x.T], [-x, s_inv]])


def _cholesky(K):
    return jax.scipy.linalg.cho_factor(K)[0]


def _cholesky_apply(U, B):
    return jax.scipy.linalg.cho_solve((U, False), B.T).T


def _factor(K):
    """A factor of SPD K for :func:`_apply_inverse`. On CPU, K⁻¹ itself by
    :func:`_spd_inverse`: XLA's CPU matrix product outruns LAPACK's Cholesky and triangular
    solves (measured 4-5× per flop at d = 500), so the matmul-rich inverse is faster even
    with more flops; elsewhere the Cholesky factor."""
    return lax.platform_dependent(K, cpu=_spd_inverse, default=_cholesky)


def _apply_inverse(F, B):
    """B K⁻¹ from F = :func:`_factor` (K): one matrix product on CPU, two triangular solves
    elsewhere."""
    return lax.platform_dependent(F, B, cpu=lambda F, B: B @ F, default=_cholesky_apply)


def _irls(Rxx, Ryx, lamw, M0, iterations: int, eps, part: _Partition, step, tol, early: bool):
    """ε-smoothed IRLS for the variational ℓ2,1 with a frozen factorization.

    Each step sets η_g = √(‖M_:g‖² + ε) per group g (a column, or one of ``part``'s groups),
    D = λ diag(w/η) (each column takes its group's value) and moves M towards the solution of
    M K = Ryx, K = Rxx + D. The first step factors K_f = K and solves; the next ones take one
    Richardson step preconditioned by the same factor, M ← M + (Ryx − M K) K_f⁻¹ (one
    matrix product instead of a factorization), as long as it contracts: with Rxx ⪰ 0 the
    eigenvalues of K_f⁻¹K lie in [min(1, min r), max(1, max r)], r = D/D_f, so the step's
    contraction is at most ρ = max(1 − min r, max r − 1); when ρ > 1/2 (η moved by more
    than about half) K is factored afresh. On seed 003's data one factorization and one
    Richardson step reach the objective that two exact IRLS solves reach (the η update and
    the refinement converge together).

    Started from η_g = ‖M0_:g‖, with η_g = √|g|·‖Ryx‖_F / ‖Rxx‖_F (the scale of |g| columns
    of M) for the zero groups of M0 — all of them on a cold start, a ridge solve (measured on
    seed 003's data, 2-3 orders of magnitude closer after one step than η = 1). A zero
    column of a warm start thus gets a moderate penalty and can come back at a smaller λ;
    with η_j = √ε it would stay pinned near zero.

    IRLS stops after the first step whose iterate M passes the polish's test: the relative
    fixed-point residual of one proximal-gradient step from M (step ``step``) is ≤ ``tol``.
    That test costs a prox and no matrix product (the gradient is free, below), and IRLS
    steps shrink that residual much faster than FISTA steps do (seed 003, small size:
    about ×0.47 per step, 15 steps to 5e-10, where FISTA took 34 steps from 2e-8 to 1e-8).
    With ``early`` the loop is a ``while_loop`` and really stops (the Implicit mode, where
    IRLS is not differentiated); otherwise it runs ``iterations`` steps and freezes the
    state once converged, so the unrolled modes differentiate the same early-stopped map.

    Returns the last M, ∇f(M) = M Rxx − Ryx (free from the tracked residual
    E = Ryx − M K_f: ∇f(M) = −E − M D_f) and the number of steps taken.
    """
    lamw = jnp.broadcast_to(lamw, (part.num,))

    def penalty(sq):
        norms = _root(sq) * unit
        return part.expand(lamw / jnp.sqrt(norms * norms + eps))

    def factor(D):
        return _factor(Rxx + jnp.diag(D))

    def squares(M):  # ‖M_:g/u‖² per group: the penalty's and the test's only pass over M
        return part.squares(M / unit)

    def irls_step(carry):
        M, E, D_f, F, sq = carry
        D = penalty(sq)
        r = jnp.where(D_f > 0, D / D_f, 1.0)  # D_f = 0 only where λw = 0, and then D = 0
        refactor = jnp.maximum(1.0 - jnp.min(r), jnp.max(r) - 1.0) > REFACTOR_ABOVE
        # Only the factorization is conditional; both branches then take one product:
        # a fresh solve Ryx K⁻¹, or the Richardson step M + R K_f⁻¹, R = Ryx − M K.
        F = lax.cond(refactor, lambda: factor(D), lambda: F)
        R = E - M * (D - D_f)  # Ryx − M K, since Ryx − M K_f = E
        M_new = jnp.where(refactor, 0.0, M) + _apply_inverse(F, jnp.where(refactor, Ryx, R))
        E_new = jnp.where(refactor, 0.0, E - R)
        return M_new, E_new, jnp.where(refactor, D, D_f), F, squares(M_new)

    scale = _krylov.safe_div(_krylov.norm(Ryx), _krylov.norm(Rxx))
    scale = jnp.where(scale > 0, scale, 1.0)
    norms0 = part.norms(M0)
    scale = scale * jnp.sqrt(jnp.asarray(part.sizes(), Rxx.dtype))
    eta0 = jnp.where(norms0 > 0, norms0, scale).astype(Rxx.dtype)
    D0 = part.expand(lamw / eta0)
    F0 = factor(D0)  # the first step: an exact solve, so E = 0
    M1 = _apply_inverse(F0, Ryx)
    # One unit for every norm of the loop (IRLS iterates keep the first solve's scale), so
    # the test below needs no max|·| pass of its own.
    unit = _common_scale(M1)
    start = (M1, jnp.zeros_like(Ryx), D0, F0, squares(M1))

    def converged(state):
        """The relative change of one proximal-gradient step from M, ‖P − M‖/max(‖P‖, ‖M‖)
        with P = prox(Z), Z = M − step∇f(M): ‖P‖ from Z's group norms and the prox factor,
        ‖M‖ from the carried squares, so only Z and P − M take a pass."""
        M, E, D_f, _, sq = state
        Z = M + step * (E + M * D_f)
        sq_z = squares(Z)
        factor_z = part.scale(_root(sq_z) * unit, lamw, step)
        change = jnp.sum(jnp.square((Z * part.expand(factor_z) - M) / unit))
        size = jnp.maximum(jnp.sum(jnp.square(factor_z) * sq_z), jnp.sum(sq))
        return _krylov.safe_div(_root(change), _root(size)) <= tol

    one = jnp.asarray(1, jnp.int32)
    if early:

        def cond(carry):
            k, state, done = carry
            return (k < iterations) & ~done

        def body(carry):
            k, state, _ = carry
            state = irls_step(state)
            return k + 1, state, converged(state)

        k, (M, E, D_f, _, _), _ = lax.while_loop(cond, body, (one, start, converged(start)))
    else:

        def frozen_step(_, carry):
            k, state, done = carry
            new = irls_step(state)
            state = jax.tree_util.tree_map(lambda a, b: jnp.where(done, a, b), state, new)
            return k + jnp.where(done, 0, 1).astype(jnp.int32), state, done | converged(new)

        start = (one, start, converged(start))
        k, (M, E, D_f, _, _), _ = lax.fori_loop(1, iterations, frozen_step, start)
    return M, -E - M * D_f, k


def _altmin_start(
    Rxx, Ryx, lamw, M0, step, tol, iterations: int, eps, part: _Partition, early: bool
):
    """IRLS, then one proximal-gradient step that needs no matrix product.

    IRLS gives the gradient at its last iterate for free (see :func:`_irls`). Returns the
    prox step's output, its relative fixed-point residual (the FISTA polish stops at
    once when that is ≤ tol) and the IRLS steps taken.
    """
    M, grad, taken = _irls(Rxx, Ryx, lamw, M0, iterations, eps, part, step, tol, early)
    M_prox = part(M - step * grad, lamw, step)
    residual = _relative_change(M_prox, M)[0]
    # λ = 0 with a singular Rxx leaves IRLS nothing to solve: fall back to M0, unconverged.
    ok = jnp.all(jnp.isfinite(M_prox))
    big = jnp.asarray(jnp.finfo(M0.dtype).max, M0.dtype)
    return jnp.where(ok, M_prox, M0), jnp.where(ok, residual, big), taken


@cached
def linear_reconstruction(
    Rxx,
    Ryx,
    lam,
    *,
    method: str = "altmin",
    bias: bool = False,
    groups=None,
    M0=None,
    tol=None,
    maxiter: int = 2000,
    step=None,
    q=2.0,
    restart: bool = True,
    altmin_iterations: int = 30,
    eps=1e-10,
    gradient: GradientMode = Implicit(),
) -> tuple[jax.Array, Info]:
    """Solve min_M ½tr(M Rxx Mᵀ) − tr(Ryx Mᵀ) + λ Σ_g ‖M_:g‖ (see the module docstring).

    The groups g are the columns of M (one input each), or the groups of ``groups``: e.g.
    the 16 inputs of a linear layer that come from one channel of a convolution (a zero
    group removes the channel), or the k×k columns of one input channel of a convolution
    in :func:`conv_patches` form (a zero group removes the previous layer's filter).

    >>> import jax.numpy as jnp, glrjax
    >>> Ryx = jnp.array([[3.0, 0.1, 0.0, 0.0], [4.0, 0.0, 0.3, 0.4]])
    >>> M, _ = glrjax.linear_reconstruction(jnp.eye(4), Ryx, 1.0, groups=[[0, 1], [2, 3]],
    ...                                     tol=1e-10)
    >>> glrjax.support(M, groups=[[0, 1], [2, 3]]).tolist()  # group norms 5.001 and 0.5
    [True, True, False, False]

    Args:
        Rxx: (d, d) symmetric PSD input correlation E[x xᵀ] (see :func:`correlations`).
        Ryx: (h, d) output–input correlation E[y xᵀ].
        lam: λ ≥ 0, a traced scalar (changing it does not recompile; it gets gradients).
        method: ``"pgd"``, ``"fista"`` or ``"altmin"`` (IRLS warm start, then FISTA).
        bias: the last column of Rxx/Ryx is the bias (input ≡ 1): not penalized.
        groups: ``None`` (one group per column) or a static partition of the columns: a
            sequence of integer index sequences (each column in exactly one group, no
            group empty; with ``bias`` they partition the columns before the bias column,
            which is a group of its own). ``np.arange(d).reshape(-1, k)`` gives contiguous
            groups of k. Each group has weight 1.
        M0: starting point, (h, d); zeros by default (warm starts: :func:`lambda_path`).
        tol: stop when the relative fixed-point residual of the proximal iteration is ≤ tol
            (see :mod:`glrjax.proximal`). ``None``: max(1e-8, 100·ε) for the dtype's ε —
            1e-8 in float64, 1.2e-5 in float32. In float32 the step-to-step change that
            PGD and FISTA stop on jitters at about 1e-7 from rounding, so 1e-8 would
            usually run them to ``maxiter`` (2,000 steps where 1.2e-5 takes 24–1,300).
        maxiter: maximum proximal steps (static). For ``"altmin"`` these are the FISTA
            steps after the IRLS steps and their closing prox step; 0 is allowed there.
        step: the proximal step; ``None`` uses 1/(1.01·λ_max(Rxx)) by power iteration
            (cheap: matrix–vector products). Pass it to reuse one estimate across calls.
        q, restart: FISTA's look-ahead parameter and adaptive restart (``"fista"``,
            ``"altmin"``).
        altmin_iterations: at most this many IRLS steps before the polish (static;
            ``"altmin"`` only); they stop at the first iterate whose proximal step's
            relative residual is ≤ ``tol`` (then the polish takes no step). If
            they break down (λ = 0 with a singular Rxx), the polish starts from M0.
        eps: the IRLS smoothing ε (in units of ‖M_:j‖²); its bias is removed by the polish.
        gradient: gradient mode (default ``Implicit()``: the fixed point of the prox map,
            backward by GMRES). Under the unrolled modes ``"altmin"`` also differentiates
            through the IRLS steps.

    Returns:
        ``(M, info)``: the (h, d) solution and the proximal solver's :class:`Info`
        (``"altmin"``: ``iterations`` counts the IRLS steps and the prox step too).
    """
    gradient = check_gradient(gradient)
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {METHODS}; e.g. method='altmin'.")
    Rxx, Ryx = _check_correlations(Rxx, Ryx)
    lam = _check_lam(lam, Rxx.dtype)
    if tol is None:
        tol = dtype_tol(Rxx.dtype, 1e-8)
    check_tol(tol)
    if not (method == "altmin" and maxiter == 0):  # altmin may stop after its prox step
        maxiter = check_maxiter(maxiter)
    altmin_iterations = check_maxiter(altmin_iterations, "altmin_iterations")
    check_positive(eps, "eps", "1e-10")
    if M0 is None:
        M0 = jnp.zeros_like(Ryx)
    else:
        M0 = check_float_array(M0, "M0")
        if M0.shape != Ryx.shape:
            raise ValueError(f"M0 has shape {M0.shape}; it must be shaped like Ryx {Ryx.shape}.")
        M0 = M0.astype(Ryx.dtype)
    part = _partition(groups, Rxx.shape[0], bias)
    prox = group_l21 if groups is None else part
    if step is not None:
        check_positive(step, "step", "0.1")
    validated()
    lamw = _group_weights(lam, part.num, bias)
    step = 1.0 / _lipschitz(Rxx) if step is None else step
    corr = (Rxx, Ryx)
    common = dict(step=step, tol=tol, maxiter=maxiter, gradient=gradient)
    if method == "pgd":
        return pgd(_grad_f, prox, M0, corr, lamw, **common)
    if method == "fista":
        return fista(_grad_f, prox, M0, corr, lamw, q=q, restart=restart, **common)
    q = _check_q(q, Rxx.dtype)
    step = check_float_array(step, "step").astype(Rxx.dtype)
    if step.ndim:
        raise ValueError(f"step has shape {step.shape}; linear_reconstruction takes a scalar.")
    check_positive(step, "step", "0.1")
    inputs = (Rxx, Ryx, lamw, M0, step, jnp.asarray(tol, Rxx.dtype))
    implicit = isinstance(gradient, Implicit)
    if implicit:  # the warm start gets no gradient in this mode
        inputs = lax.stop_gradient(inputs)
    eps = jnp.asarray(eps, Rxx.dtype)
    M_prox, residual, taken = _altmin_start(*inputs, altmin_iterations, eps, part, implicit)
    done = taken + 1  # IRLS steps and the prox step
    if maxiter == 0:  # no polish: the prox step's output, its residual as the stopping quantity
        broke = residual == jnp.finfo(residual.dtype).max  # IRLS had nothing to solve
        code = jnp.where(
            broke,
            RESULTS.breakdown,
            jnp.where(residual <= tol, RESULTS.successful, RESULTS.max_steps_reached),
        ).astype(jnp.int32)
        residual = jnp.where(broke, jnp.nan, residual)
        info = Info(done, residual, code == RESULTS.successful, code)
        if not isinstance(gradient, Implicit):
            return M_prox, info
        # The solution is M_prox itself (passed as x0, which the implicit VJP treats as
        # constant); the backward pass solves the adjoint system of the prox fixed point.
        optimality = _optimality(_grad_f, prox, False)
        params = (corr, lamw, step)
        M, _ = implicit_solve(lambda p, x0: (x0, None), optimality, params, M_prox, gradient, False)
        return M, info
    M, info = _run_fista(
        _grad_f,
        prox,
        M_prox,
        corr,
        lamw,
        step,
        False,
        q,
        bool(restart),
        tol,
        maxiter,
        gradient,
        residual0=residual,
    )
    return M, info._replace(iterations=info.iterations + done)


def debias(Rxx, Ryx, keep, *, bias: bool = False):
    """Least squares on the kept columns: M_S = Ryx_:S Rxx_SS⁺, M_:j = 0 for j ∉ S.

    Removes the shrinkage of the ℓ2,1 penalty once the support is chosen. ``keep`` is a
    boolean (d,) mask (e.g. :func:`support` of a solution; traced values allowed), and the
    bias column is always kept when ``bias``. Rxx_SS⁺ is the pseudo-inverse (minimum-norm
    least squares when the kept inputs are linearly dependent). Differentiable in Rxx, Ryx.

    >>> import jax.numpy as jnp
    >>> Rxx = jnp.array([[2.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 1.0]])
    >>> debias(Rxx, jnp.array([[2.0, 2.0, 3.0]]), jnp.array([True, False, True])).tolist()
    [[1.0, 0.0, 3.0]]
    """
    Rxx, Ryx = _check_correlations(Rxx, Ryx)
    keep = jnp.asarray(keep)
    if keep.shape != (Rxx.shape[0],) or keep.dtype != jnp.bool_:
        raise ValueError(
            f"keep must be a boolean mask of shape ({Rxx.shape[0]},), one entry per column; "
            f"got {keep.dtype} {keep.shape}. Use support(M)."
        )
    if bias:
        keep = keep.at[-1].set(True)
    both = keep[:, None] & keep[None, :]
    # Dropped columns become a (scaled) identity block with a zero right-hand side: they
    # solve to 0, and the block is scaled like Rxx so it does not change the pinv cutoff.
    scale = jnp.maximum(jnp.mean(jnp.abs(jnp.diag(Rxx))), jnp.finfo(Rxx.dtype).tiny)
    k = jnp.where(both, Rxx, 0.0) + jnp.diag(jnp.where(keep, 0.0, scale).astype(Rxx.dtype))
    rhs = jnp.where(keep[None, :], Ryx, 0.0)
    return jnp.where(keep[None, :], rhs @ jnp.linalg.pinv(k, hermitian=True), 0.0)


def lambda_path(Rxx, Ryx, lams, *, M0=None, **kwargs) -> tuple[jax.Array, Info]:
    """Solve along a path of λ values with warm starts (each from the previous solution).

    Pass ``lams`` in decreasing order (from sparse to dense solutions: each warm start is
    then close). Keyword arguments go to :func:`linear_reconstruction`. A ``lax.scan``:
    one compilation for the whole path, differentiable under every gradient mode.

    Returns:
        ``(Ms, info)`` with Ms of shape (len(lams), h, d) and an :class:`Info` of arrays.

    >>> import jax.numpy as jnp
    >>> Ryx = jnp.array([[3.0, 0.1, 0.0], [4.0, 0.0, 1.0]])
    >>> Ms, info = lambda_path(jnp.eye(3), Ryx, jnp.array([6.0, 2.0, 0.5]), tol=1e-10)
    >>> [int(support(M).sum()) for M in Ms]
    [0, 1, 2]
    """
    Rxx, Ryx = _check_correlations(Rxx, Ryx)
    lams = check_float_array(lams, "lams").astype(Rxx.dtype)
    if lams.ndim != 1:
        raise ValueError(f"lams has shape {lams.shape}; pass a 1-D array of λ values.")
    check_nonnegative(lams, "lams", "jnp.geomspace(1.0, 1e-3, 10)")
    M0 = jnp.zeros_like(Ryx) if M0 is None else jnp.asarray(M0, Ryx.dtype)

    def body(M, lam):
        M, info = linear_reconstruction(Rxx, Ryx, lam, M0=M, **kwargs)
        return M, (M, info)

    _, (Ms, info) = lax.scan(body, M0, lams)
    return Ms, info


# ----------------------------------------------------------------------------- data
def correlations(fn, data, *, batch_size: int = 1024, bias: bool = False):
    """Rxx = (1/n) Σ x xᵀ and Ryx = (1/n) Σ y xᵀ, accumulated over batches of ``data``.

    ``fn(batch) -> (x, y)`` maps a batch of ``data`` (a pytree of arrays with leading axis
    n) to layer inputs x (b, d) and targets y (b, h) — e.g. the hidden activations of a
    network and its next layer's outputs. For a convolution, ``fn`` may return x (b, L, d)
    and y (b, L, h): L rows per sample, e.g. the L patches of :func:`conv_patches` and
    the convolution's outputs at those L positions; the averages are then over the n·L
    rows. Batches run in a ``lax.scan``, so only one batch of x and y exists at a time
    (the last batch is padded and masked). With ``bias`` a trailing 1 is appended to x
    (d + 1 columns). Note: seed 003's code divides by d·n instead of n, which rescales λ
    by d.

    >>> import jax.numpy as jnp
    >>> X = jnp.arange(12.0).reshape(6, 2)
    >>> Rxx, Ryx = correlations(lambda x: (x, 2 * x[:, :1]), X, batch_size=4)
    >>> bool(jnp.allclose(Rxx, X.T @ X / 6)), Ryx.shape
    (True, (1, 2))
    """
    if not callable(fn):
        raise TypeError(f"fn must be a function fn(batch) -> (x, y), got {type(fn).__name__}.")
    batch_size = check_maxiter(batch_size, "batch_size")
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ValueError("data has no arrays; pass an array (n, ...) or a pytree of them.")
    n = int(jnp.shape(leaves[0])[0])
    if any(jnp.shape(a)[0] != n for a in leaves):
        raise ValueError("every array in data must have the same leading (sample) axis n.")
    batch_size = min(batch_size, n)
    chunks = -(-n // batch_size)
    pad = chunks * batch_size - n

    def chunked(a):
        a = jnp.asarray(a)
        a = jnp.concatenate([a, jnp.zeros((pad,) + a.shape[1:], a.dtype)]) if pad else a
        return a.reshape((chunks, batch_size) + a.shape[1:])

    batches = jax.tree_util.tree_map(chunked, data)
    mask = (jnp.arange(chunks * batch_size) < n).reshape(chunks, batch_size)
    x_shape, y_shape = jax.eval_shape(fn, jax.tree_util.tree_map(lambda a: a[0], batches))
    xs, ys = x_shape.shape, y_shape.shape
    if not (
        (len(xs) == len(ys) == 2 and xs[0] == ys[0] == batch_size)
        or (len(xs) == len(ys) == 3 and xs[:2] == ys[:2] and xs[0] == batch_size)
    ):
        raise ValueError(
            f"fn(batch) must return x of shape (b, d) and y of shape (b, h), or x (b, L, d) "
            f"and y (b, L, h) (L rows per sample, e.g. conv_patches), with b = {batch_size} "
            f"the batch size; got {xs} and {ys}."
        )
    rows = 1 if len(xs) == 2 else xs[1]
    dtype = jnp.result_type(x_shape.dtype, y_shape.dtype)
    d = xs[-1] + int(bias)
    h = ys[-1]

    def body(acc, inputs):
        batch, m = inputs
        x, y = fn(batch)
        x = x.astype(dtype).reshape(-1, xs[-1])
        y = y.astype(dtype).reshape(-1, h)
        m = jnp.repeat(m, rows)
        if bias:
            x = jnp.concatenate([x, jnp.ones((x.shape[0], 1), dtype)], axis=1)
        x = jnp.where(m[:, None], x, 0.0)
        y = jnp.where(m[:, None], y, 0.0)
        return (acc[0] + _krylov.matmul(x.T, x), acc[1] + _krylov.matmul(y.T, x)), None

    zeros = (jnp.zeros((d, d), dtype), jnp.zeros((h, d), dtype))
    (sxx, syx), _ = lax.scan(body, zeros, (batches, mask))
    return sxx / (n * rows), syx / (n * rows)


def conv_patches(x, kernel_size, *, stride=1, padding="VALID"):
    """im2col: the (b, L, C·k_h·k_w) patches a 2-D convolution of NHWC images ``x`` reads.

    Row l of sample i is the input patch under output position l (row-major over the
    output's H'×W'); its columns are ordered channel first, (c, u, v), so the k_h·k_w
    columns of input channel c are contiguous — the group of that channel is
    ``np.arange(C * k_h * k_w).reshape(C, -1)[c]``. A convolution with HWIO kernel K and
    no bias is then ``conv_patches(x, K.shape[:2]) @ W.T`` with
    ``W = K.transpose(3, 2, 0, 1).reshape(O, -1)``, the (O, C·k_h·k_w) matrix whose
    reconstruction by :func:`linear_reconstruction` chooses input channels.

    >>> import jax, jax.numpy as jnp
    >>> x = jax.random.normal(jax.random.key(0), (2, 6, 6, 3))
    >>> K = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))
    >>> y = jax.lax.conv_general_dilated(x, K, (1, 1), "VALID",
    ...                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))
    >>> W = K.transpose(3, 2, 0, 1).reshape(4, -1)
    >>> p = conv_patches(x, (3, 3))
    >>> p.shape, bool(jnp.allclose(p @ W.T, y.reshape(2, -1, 4), atol=1e-4))
    ((2, 16, 27), True)
    """
    x = check_float_array(x, "x")
    if x.ndim != 4:
        raise ValueError(f"x has shape {x.shape}; conv_patches takes NHWC images (b, H, W, C).")
    kernel_size = (kernel_size, kernel_size) if np.ndim(kernel_size) == 0 else kernel_size
    stride = (stride, stride) if np.ndim(stride) == 0 else stride
    p = lax.conv_general_dilated_patches(
        x,
        tuple(int(k) for k in kernel_size),
        tuple(int(s) for s in stride),
        padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=lax.Precision.HIGHEST,
    )
    return p.reshape(x.shape[0], -1, p.shape[-1])
