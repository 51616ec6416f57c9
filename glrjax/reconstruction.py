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
then Richardson steps preconditioned by it while η stays close (one matrix product each) —
then one proximal-gradient step whose gradient IRLS gives for free, then a FISTA polish
with adaptive restart. Every method is differentiable with respect to λ, Rxx and Ryx under
every gradient mode.

    >>> import jax.numpy as jnp, glrjax
    >>> Rxx = jnp.eye(3)
    >>> Ryx = jnp.array([[3.0, 0.1, 0.0], [4.0, 0.0, 1.0]])  # column norms 5, 0.1, 1
    >>> M, info = glrjax.linear_reconstruction(Rxx, Ryx, 0.5, tol=1e-10)
    >>> glrjax.support(M).tolist()  # with Rxx = I the solution is group_l21(Ryx, λ)
    [True, False, True]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from glrjax import _krylov
from glrjax._validate import (
    _concrete_array,
    check_float_array,
    check_maxiter,
    check_nonnegative,
    check_positive,
)
from glrjax.gradients import GradientMode, Implicit, check_gradient
from glrjax.implicit import implicit_solve
from glrjax.iterate import Info
from glrjax.prox import group_l21, group_l21_value, group_norms
from glrjax.results import RESULTS
from glrjax.proximal import _check_q, _optimality, _relative_change, _run_fista, fista, pgd

__all__ = [
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


def _group_weights(lam, d: int, bias: bool):
    """λ·w_j per column: λ, or 0 on the bias column (the last) when ``bias``."""
    if not bias:
        return lam
    return lam * jnp.ones((d,), lam.dtype).at[-1].set(0.0)


# ----------------------------------------------------------------------------- the problem
def reconstruction_objective(M, Rxx, Ryx, lam, *, bias: bool = False):
    """½ tr(M Rxx Mᵀ) − tr(Ryx Mᵀ) + λ Σ_j ‖M_:j‖ (the bias column unpenalized if ``bias``).

    >>> import jax.numpy as jnp
    >>> float(reconstruction_objective(jnp.ones((1, 2)), jnp.eye(2), jnp.zeros((1, 2)), 1.0))
    3.0
    """
    lamw = _group_weights(jnp.asarray(lam, M.dtype), M.shape[-1], bias)
    return 0.5 * jnp.sum(_krylov.matmul(M, Rxx) * M) - jnp.sum(Ryx * M) + group_l21_value(M, lamw)


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


def support(M, *, bias: bool = False):
    """Boolean mask of the nonzero columns of M (the kept inputs); the bias column is kept.

    >>> import jax.numpy as jnp
    >>> support(jnp.array([[1.0, 0.0, 0.0]]), bias=True).tolist()
    [True, False, True]
    """
    keep = group_norms(M, axis=0) > 0
    return keep.at[-1].set(True) if bias else keep


def lambda_max(Rxx, Ryx, *, bias: bool = False):
    """The smallest λ for which M = 0 (but for the bias column) is the solution.

    Without bias, max_j ‖Ryx_:j‖ (the gradient at M = 0). With ``bias``, the bias column
    m = Ryx_:d / Rxx_dd is fitted first and λ_max = max_{j<d} ‖m Rxx_dj − Ryx_:j‖.

    >>> import jax.numpy as jnp
    >>> float(lambda_max(jnp.eye(2), jnp.array([[3.0, 1.0], [4.0, 0.0]])))
    5.0
    """
    Rxx, Ryx = _check_correlations(Rxx, Ryx)
    if not bias:
        return jnp.max(group_norms(Ryx, axis=0))
    m = Ryx[:, -1:] / Rxx[-1, -1]
    g = m * Rxx[-1:, :] - Ryx
    return jnp.max(group_norms(g[:, :-1], axis=0))


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


def _irls(Rxx, Ryx, lamw, M0, iterations: int, eps):
    """ε-smoothed IRLS for the variational ℓ2,1 with a frozen factorization.

    Each step sets η_j = √(‖M_:j‖² + ε), D = λ diag(w/η) and moves M towards the solution of
    M K = Ryx, K = Rxx + D. The first step factors K_f = K and solves; the next ones take one
    Richardson step preconditioned by the same factor, M ← M + (Ryx − M K) K_f⁻¹ (one
    matrix product instead of a factorization), as long as it contracts: with Rxx ⪰ 0 the
    eigenvalues of K_f⁻¹K lie in [min(1, min r), max(1, max r)], r = D/D_f, so the step's
    contraction is at most ρ = max(1 − min r, max r − 1); when ρ > 1/2 (η moved by more
    than about half) K is factored afresh. On seed 003's data one factorization and one
    Richardson step reach the objective that two exact IRLS solves reach (the η update and
    the refinement converge together).

    Started from η_j = ‖M0_:j‖, with η_j = ‖Ryx‖_F / ‖Rxx‖_F (the scale of a column of M)
    for the zero columns of M0 — all of them on a cold start, a ridge solve (measured on
    seed 003's data, 2-3 orders of magnitude closer after one step than η = 1). A zero
    column of a warm start thus gets a moderate penalty and can come back at a smaller λ;
    with η_j = √ε it would stay pinned near zero.

    Returns the last M and ∇f(M) = M Rxx − Ryx, free from the tracked residual
    E = Ryx − M K_f: ∇f(M) = −E − M D_f.
    """
    d = Rxx.shape[0]
    lamw = jnp.broadcast_to(lamw, (d,))

    def penalty(M):
        return lamw / jnp.sqrt(jnp.sum(M * M, axis=0) + eps)

    def factor(D):
        return _factor(Rxx + jnp.diag(D))

    def step(_, carry):
        M, E, D_f, F = carry
        D = penalty(M)
        r = jnp.where(D_f > 0, D / D_f, 1.0)  # D_f = 0 only where λw = 0, and then D = 0
        refactor = jnp.maximum(1.0 - jnp.min(r), jnp.max(r) - 1.0) > REFACTOR_ABOVE
        # Only the factorization is conditional; both branches then take one product:
        # a fresh solve Ryx K⁻¹, or the Richardson step M + R K_f⁻¹, R = Ryx − M K.
        F = lax.cond(refactor, lambda: factor(D), lambda: F)
        R = E - M * (D - D_f)  # Ryx − M K, since Ryx − M K_f = E
        M_new = jnp.where(refactor, 0.0, M) + _apply_inverse(F, jnp.where(refactor, Ryx, R))
        return M_new, jnp.where(refactor, 0.0, E - R), jnp.where(refactor, D, D_f), F

    scale = _krylov.safe_div(_krylov.norm(Ryx), _krylov.norm(Rxx))
    scale = jnp.where(scale > 0, scale, 1.0)
    norms0 = group_norms(M0, axis=0)
    eta0 = jnp.where(norms0 > 0, norms0, scale).astype(Rxx.dtype)
    D0 = lamw / eta0
    F0 = factor(D0)  # the first step: an exact solve, so E = 0
    start = (_apply_inverse(F0, Ryx), jnp.zeros_like(Ryx), D0, F0)
    M, E, D_f, _ = lax.fori_loop(1, iterations, step, start)
    return M, -E - M * D_f


def _altmin_start(Rxx, Ryx, lamw, M0, step, iterations: int, eps):
    """IRLS, then one proximal-gradient step that needs no matrix product.

    IRLS gives the gradient at its last iterate for free (see :func:`_irls`). Returns the
    prox step's output and its relative fixed-point residual (the FISTA polish stops at
    once when that is ≤ tol).
    """
    M, grad = _irls(Rxx, Ryx, lamw, M0, iterations, eps)
    M_prox = group_l21(M - step * grad, lamw, step)
    residual = _relative_change(M_prox, M)[0]
    # λ = 0 with a singular Rxx leaves IRLS nothing to solve: fall back to M0, unconverged.
    ok = jnp.all(jnp.isfinite(M_prox))
    big = jnp.asarray(jnp.finfo(M0.dtype).max, M0.dtype)
    return jnp.where(ok, M_prox, M0), jnp.where(ok, residual, big)


def linear_reconstruction(
    Rxx,
    Ryx,
    lam,
    *,
    method: str = "altmin",
    bias: bool = False,
    M0=None,
    tol=1e-8,
    maxiter: int = 2000,
    step=None,
    q=2.0,
    restart: bool = True,
    altmin_iterations: int = 10,
    eps=1e-10,
    gradient: GradientMode = Implicit(),
) -> tuple[jax.Array, Info]:
    """Solve min_M ½tr(M Rxx Mᵀ) − tr(Ryx Mᵀ) + λ Σ_j ‖M_:j‖ (see the module docstring).

    Args:
        Rxx: (d, d) symmetric PSD input correlation E[x xᵀ] (see :func:`correlations`).
        Ryx: (h, d) output–input correlation E[y xᵀ].
        lam: λ ≥ 0, a traced scalar (changing it does not recompile; it gets gradients).
        method: ``"pgd"``, ``"fista"`` or ``"altmin"`` (IRLS warm start, then FISTA).
        bias: the last column of Rxx/Ryx is the bias (input ≡ 1): not penalized.
        M0: starting point, (h, d); zeros by default (warm starts: :func:`lambda_path`).
        tol: stop when the relative fixed-point residual of the proximal iteration is ≤ tol
            (see :mod:`glrjax.proximal`).
        maxiter: maximum proximal steps (static). For ``"altmin"`` these are the FISTA
            steps after the IRLS steps and their closing prox step; 0 is allowed there.
        step: the proximal step; ``None`` uses 1/(1.01·λ_max(Rxx)) by power iteration
            (cheap: matrix–vector products). Pass it to reuse one estimate across calls.
        q, restart: FISTA's look-ahead parameter and adaptive restart (``"fista"``,
            ``"altmin"``).
        altmin_iterations: IRLS steps before the polish (static; ``"altmin"`` only). If
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
    lamw = _group_weights(lam, Rxx.shape[0], bias)
    step = 1.0 / _lipschitz(Rxx) if step is None else step
    corr = (Rxx, Ryx)
    common = dict(step=step, tol=tol, maxiter=maxiter, gradient=gradient)
    if method == "pgd":
        return pgd(_grad_f, group_l21, M0, corr, lamw, **common)
    if method == "fista":
        return fista(_grad_f, group_l21, M0, corr, lamw, q=q, restart=restart, **common)
    q = _check_q(q, Rxx.dtype)
    step = check_float_array(step, "step").astype(Rxx.dtype)
    if step.ndim:
        raise ValueError(f"step has shape {step.shape}; linear_reconstruction takes a scalar.")
    check_positive(step, "step", "0.1")
    inputs = (Rxx, Ryx, lamw, M0, step)
    if isinstance(gradient, Implicit):  # the warm start gets no gradient in this mode
        inputs = lax.stop_gradient(inputs)
    eps = jnp.asarray(eps, Rxx.dtype)
    M_prox, residual = _altmin_start(*inputs, altmin_iterations, eps)
    done = jnp.asarray(altmin_iterations + 1, jnp.int32)  # IRLS steps and the prox step
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
        optimality = _optimality(_grad_f, group_l21, False)
        params = (corr, lamw, step)
        M, _ = implicit_solve(lambda p, x0: (x0, None), optimality, params, M_prox, gradient, False)
        return M, info
    M, info = _run_fista(
        _grad_f,
        group_l21,
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
    network and its next layer's outputs. Batches run in a ``lax.scan``, so only one batch
    of x and y exists at a time (the last batch is padded and masked). With ``bias`` a
    trailing 1 is appended to x (d + 1 columns). Note: seed 003's code divides by d·n
    instead of n, which rescales λ by d.

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
    if len(x_shape.shape) != 2 or len(y_shape.shape) != 2:
        raise ValueError(
            f"fn(batch) must return x of shape (b, d) and y of shape (b, h); got "
            f"{x_shape.shape} and {y_shape.shape}."
        )
    dtype = jnp.result_type(x_shape.dtype, y_shape.dtype)
    d = x_shape.shape[1] + int(bias)
    h = y_shape.shape[1]

    def body(acc, inputs):
        batch, m = inputs
        x, y = fn(batch)
        x = x.astype(dtype)
        if bias:
            x = jnp.concatenate([x, jnp.ones((x.shape[0], 1), dtype)], axis=1)
        x = jnp.where(m[:, None], x, 0.0)
        y = jnp.where(m[:, None], y.astype(dtype), 0.0)
        return (acc[0] + _krylov.matmul(x.T, x), acc[1] + _krylov.matmul(y.T, x)), None

    zeros = (jnp.zeros((d, d), dtype), jnp.zeros((h, d), dtype))
    (sxx, syx), _ = lax.scan(body, zeros, (batches, mask))
    return sxx / n, syx / n
