"""Krylov kernels shared by the forward CG solver and the implicit backward solves.

Plain functions of arrays: the conjugate-gradient recurrence (with optional learned
step sizes) and mode-free ``while_loop`` solves used inside custom VJPs. Vectors are
arrays of any shape, treated as flat.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax


def vdot(a, b):
    """Real inner product of two same-shape arrays, as a scalar of their dtype."""
    return jnp.sum(a * b)


def matmul(a, b):
    """a @ b in full float32/float64: GPUs default to TF32 products (about 3 digits), too few
    for a solver's stopping rule and for gradients checked against float64 references."""
    return jnp.matmul(a, b, precision=lax.Precision.HIGHEST)


def norm(a):
    """Euclidean norm with a finite gradient at zero (double-`where` trick); NaN stays NaN."""
    sq = vdot(a, a)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), sq)


def safe_div(num, den):
    """num / den, and 0 where den == 0, with finite gradients on both branches."""
    nonzero = den != 0
    return jnp.where(nonzero, num / jnp.where(nonzero, den, 1.0), 0.0)


class CGState(NamedTuple):
    """State of the (preconditioned) conjugate-gradient recurrence."""

    x: jax.Array  # current iterate
    r: jax.Array  # residual b - A x (recursively updated)
    p: jax.Array  # search direction
    rz: jax.Array  # ⟨r, M r⟩, the preconditioned residual energy
    rnorm: jax.Array  # ‖r‖
    bnorm: jax.Array  # ‖b‖ (or 1 when b = 0), the scale of the relative residual


def cg_init(matvec, b, x0=None, precond=None) -> CGState:
    """CG state at ``x0`` (zero when None, which saves one matvec)."""
    if x0 is None:
        x = jnp.zeros_like(b)
        r = b
    else:
        x = x0
        r = b - matvec(x0)
    z = r if precond is None else precond(r)
    bnorm = norm(b)
    bnorm = jnp.where(bnorm > 0, bnorm, jnp.ones_like(bnorm))
    return CGState(x=x, r=r, p=z, rz=vdot(r, z), rnorm=norm(r), bnorm=bnorm)


def cg_step(matvec, state: CGState, precond=None, alpha=None, beta=None) -> CGState:
    """One CG step. ``alpha``/``beta`` (scalars) replace the computed step sizes.

    With learned steps (seeds 000/001) the update is x += α p; r -= α A p; p = r + β p.
    The recurrence keeps r = b - A x for any α, so ‖r‖ stays the true residual in exact
    arithmetic. Divisions are guarded so that a converged state (r = p = 0) steps to a
    finite state with finite derivatives.
    """
    ap = matvec(state.p)
    if alpha is None:
        alpha = safe_div(state.rz, vdot(state.p, ap))
    x = state.x + alpha * state.p
    r = state.r - alpha * ap
    z = r if precond is None else precond(r)
    rz = vdot(r, z)
    if beta is None:
        beta = safe_div(rz, state.rz)
    p = z + beta * state.p
    return CGState(x=x, r=r, p=p, rz=rz, rnorm=norm(r), bnorm=state.bnorm)


def solve_cg(matvec, b, *, tol, maxiter, precond=None):
    """Solve ``matvec(u) = b`` (symmetric definite) by CG to relative residual ``tol``.

    ``precond`` approximates the inverse of ``matvec`` with the same definiteness (for a
    negative definite operator, a negative definite preconditioner: PCG then equals PCG
    on the negated system). Returns ``(u, converged, iterations)``; used by the implicit
    backward pass.
    """
    tol = jnp.asarray(tol, b.dtype)

    def cond(carry):
        state, k = carry
        return (k < maxiter) & (state.rnorm > tol * state.bnorm) & jnp.isfinite(state.rnorm)

    def body(carry):
        state, k = carry
        return cg_step(matvec, state, precond), k + 1

    start = cg_init(matvec, b, precond=precond)
    state, k = lax.while_loop(cond, body, (start, jnp.asarray(0, jnp.int32)))
    converged = state.rnorm <= tol * state.bnorm
    return state.x, converged, k


def solve_gmres(matvec, b, *, tol, maxiter):
    """Solve ``matvec(u) = b`` by restarted GMRES; convergence checked on the true residual.

    ``jax.scipy.sparse.linalg.gmres`` reports no convergence information, so the true
    residual ‖matvec(u) - b‖ is measured afterwards. The check allows for round-off:
    it uses max(10·tol, 100·eps) so float32 solves are not failed for digits they cannot
    hold.
    """
    restart = int(max(1, min(30, b.size, maxiter)))
    outer = max(1, -(-maxiter // restart))
    u, _ = jax.scipy.sparse.linalg.gmres(
        matvec, b, tol=tol, atol=0.0, restart=restart, maxiter=outer, solve_method="batched"
    )
    resid = norm(matvec(u) - b)
    eps = jnp.finfo(b.dtype).eps
    bound = jnp.maximum(10.0 * tol, 100.0 * eps) * norm(b)
    converged = (resid <= bound) & jnp.all(jnp.isfinite(u))
    return u, converged, jnp.asarray(restart * outer, jnp.int32)


def solve_neumann(jtvec, b, *, maxiter):
    """u = Σ_{i=0}^{maxiter} Mⁱ b with M = ``jtvec`` (the fixed-point map's transposed Jacobian).

    ``maxiter = 0`` gives u = b (Jacobian-free backprop). The series is reported as
    failed when it diverges: a non-finite result, or a last term larger than the first.
    """
    b0 = norm(b)

    def body(_, carry):
        term, total = carry
        term = jtvec(term)
        return term, total + term

    term, total = lax.fori_loop(0, maxiter, body, (b, b))
    converged = jnp.all(jnp.isfinite(total)) & (norm(term) <= b0)
    return total, converged, jnp.asarray(maxiter, jnp.int32)


def power_iteration(matvec, like, iterations: int):
    """‖A v‖ for the last unit iterate v of the power method on a symmetric PSD ``matvec``.

    Approaches λ_max(A) from below. Deterministic (a fixed random start shaped like
    ``like``); callers wrap their operator's data in ``stop_gradient``.
    """
    v = jax.random.normal(jax.random.key(0), like.shape, like.dtype)
    v = v / norm(v)

    def body(_, v):
        w = matvec(v)
        return safe_div(w, norm(w))

    v = lax.fori_loop(0, iterations, body, v)
    return norm(matvec(v))


def hessian_vector_product(grad_f, x, args):
    """v ↦ ∇²f(x) v as the VJP of ``grad_f`` (the Hessian is symmetric).

    Reverse mode, so it also works through operators with custom VJPs (the graph
    Laplacian), where forward mode is unavailable.
    """
    _, vjp = jax.vjp(lambda z: grad_f(z, args), x)
    return lambda v: vjp(v)[0]
