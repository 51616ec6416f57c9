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
    """Euclidean norm that neither underflows nor overflows, with a finite gradient at zero.

    ‖a‖ = m·‖a/m‖ with m = max|aᵢ| held constant (exact for every m > 0: the norm is
    homogeneous), so entries of 1e-30 or 1e+30 in float32 give the right norm where Σaᵢ²
    would underflow to 0 or overflow to Inf. NaN stays NaN, Inf gives Inf.
    """
    m = lax.stop_gradient(jnp.max(jnp.abs(a)))
    ok = (m > 0) & jnp.isfinite(m)
    s = a / jnp.where(ok, m, jnp.ones_like(m))
    sq = vdot(s, s)
    positive = sq > 0
    root = jnp.sqrt(jnp.where(positive, sq, 1.0))
    return jnp.where(ok & positive, m * root, m)


def plain_norm(a):
    """√Σaᵢ² for vectors already scaled to O(1) (one pass; finite gradient at zero)."""
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
    anorm: jax.Array  # max Rayleigh quotient pᵀAp/pᵀp seen: a lower estimate of ‖A‖


def cg_init(matvec, b, x0=None, precond=None) -> CGState:
    """CG state at ``x0`` (zero when None, which saves one matvec)."""
    if x0 is None:
        x = jnp.zeros_like(b)
        r = b
    else:
        x = x0
        r = b - matvec(x0)
    z = r if precond is None else precond(r)
    bnorm = plain_norm(b)
    bnorm = jnp.where(bnorm > 0, bnorm, jnp.ones_like(bnorm))
    zero = jnp.zeros_like(bnorm)
    return CGState(x=x, r=r, p=z, rz=vdot(r, z), rnorm=plain_norm(r), bnorm=bnorm, anorm=zero)


def cg_step(matvec, state: CGState, precond=None, alpha=None, beta=None) -> CGState:
    """One CG step. ``alpha``/``beta`` (scalars) replace the computed step sizes.

    With learned steps (seeds 000/001) the update is x += α p; r -= α A p; p = r + β p.
    The recurrence keeps r = b - A x for any α, so ‖r‖ stays the true residual in exact
    arithmetic. Divisions are guarded so that a converged state (r = p = 0) steps to a
    finite state with finite derivatives.
    """
    ap = matvec(state.p)
    anorm = state.anorm
    if alpha is None:
        pap = vdot(state.p, ap)
        alpha = safe_div(state.rz, pap)
        anorm = jnp.maximum(anorm, lax.stop_gradient(safe_div(pap, vdot(state.p, state.p))))
    x = state.x + alpha * state.p
    r = state.r - alpha * ap
    z = r if precond is None else precond(r)
    rz = vdot(r, z)
    if beta is None:
        beta = safe_div(rz, state.rz)
    p = z + beta * state.p
    return CGState(x=x, r=r, p=p, rz=rz, rnorm=plain_norm(r), bnorm=state.bnorm, anorm=anorm)


class SolveInfo(NamedTuple):
    """What a backward (adjoint or tangent) linear solve did."""

    iterations: jax.Array  # int32: matrix-vector products taken
    residual: jax.Array  # true relative residual ‖matvec(u) − b‖/‖b‖ at exit (0 when b = 0)
    result: jax.Array  # int32 status code from glrjax.RESULTS


STAGNATION_PATIENCE = 50  # CG steps without a 1 % better residual before giving up
CG_RESTARTS = 3  # residual replacements after CG claims convergence the true residual denies
GMRES_PROGRESS = 0.99  # a restart cycle must shrink the true residual below this factor


def _flat(matvec, like):
    shape = like.shape
    return lambda v: jnp.ravel(matvec(v.reshape(shape)))


def _zero_rhs(scale, resid, code):
    """b = 0 (``scale == 0``) is solved exactly by u = 0; a NaN b is not a zero b."""
    zero = scale == 0
    return jnp.where(zero, jnp.zeros_like(resid), resid), jnp.where(zero, 0, code).astype(jnp.int32)


def solve_cg(matvec, b, *, tol, maxiter, precond=None):
    """Solve ``matvec(u) = b`` (symmetric definite) by CG to relative residual ``tol``.

    ``b`` is normalised first (a tiny or huge right-hand side behaves like a unit one) and
    the answer rescaled. A CG run stops on the recursive residual, on stagnation (no 1 %
    improvement of the best residual in :data:`STAGNATION_PATIENCE` steps) or at
    ``maxiter``; success is then decided on the true residual ‖matvec(u) − b‖ ≤ tol·‖b‖.
    When the recursive residual claims convergence but the true one is above ``tol`` (in
    float32 they drift apart by about ε·cond), CG restarts from ``u`` with the true
    residual — residual replacement, up to :data:`CG_RESTARTS` times while each restart
    at least halves it — so a tolerance the dtype can reach is reached, and one it cannot
    reach fails (status ``uncertified``) instead of passing. ``precond`` approximates the
    inverse of ``matvec`` with the same definiteness (for a negative definite operator, a
    negative definite preconditioner: PCG then equals PCG on the negated system). Returns
    ``(u, SolveInfo)``.
    """
    tol = jnp.asarray(tol, b.dtype)
    scale = norm(b)
    unit = jnp.where((scale > 0) & jnp.isfinite(scale), scale, jnp.ones_like(scale))
    bn = b / unit

    def cond(carry):
        state, k, best, k_best = carry
        moving = k - k_best < STAGNATION_PATIENCE
        return (k < maxiter) & (state.rnorm > tol) & jnp.isfinite(state.rnorm) & moving

    def body(carry):
        state, k, best, k_best = carry
        state = cg_step(matvec, state, precond)
        better = state.rnorm < 0.99 * best
        best = jnp.where(better, state.rnorm, best)
        k_best = jnp.where(better, k + 1, k_best)
        return state, k + 1, best, k_best

    def run(x, r, k):
        """One CG run from ``x`` with true residual ``r``, after ``k`` products so far."""
        z = r if precond is None else precond(r)
        rnorm = plain_norm(r)
        start = CGState(x, r, z, vdot(r, z), rnorm, jnp.ones_like(rnorm), jnp.zeros_like(rnorm))
        state, k_end, _, k_best = lax.while_loop(cond, body, (start, k, rnorm, k))
        loop = jnp.where(
            state.rnorm <= tol, 0, jnp.where(k_end - k_best >= STAGNATION_PATIENCE, 6, 1)
        ).astype(jnp.int32)
        return state.x, k_end, loop

    def outer_cond(c):
        x, r, res, prev, k, n, loop = c
        again = (loop == 0) & (res > tol) & jnp.isfinite(res) & (res < 0.5 * prev)
        return (n == 0) | (again & (n <= CG_RESTARTS) & (k < maxiter))

    def outer_body(c):
        x, r, res, prev, k, n, loop = c
        x, k, loop = run(x, r, k)
        r = bn - matvec(x)
        return x, r, norm(r), res, k + 1, n + 1, loop

    one = jnp.ones_like(scale)
    zero = jnp.asarray(0, jnp.int32)
    init = (jnp.zeros_like(bn), bn, one, jnp.full_like(one, jnp.inf), zero, zero, zero)
    x, r, res, _, k, _, loop = lax.while_loop(outer_cond, outer_body, init)
    finite = jnp.all(jnp.isfinite(x)) & jnp.isfinite(res)
    ok = finite & (res <= tol)
    # codes: 0 successful, 2 nonfinite; otherwise the loop's reason (1 or 6) or 5
    code = jnp.where(ok, 0, jnp.where(finite, jnp.where(loop == 0, 5, loop), 2))
    resid, code = _zero_rhs(scale, res, code)
    x = jnp.where(finite, x, jnp.nan)  # a NaN b gives NaN, not the u = 0 of b = 0
    return x * unit, SolveInfo(k, resid, code)


def solve_gmres(matvec, b, *, tol, maxiter, restart: int = 30):
    """Solve ``matvec(u) = b`` by restarted GMRES (Givens-rotation least squares).

    ``b`` is normalised first. Each restart cycle begins from the true residual; the solve
    stops when it is ≤ tol·‖b‖, when a cycle fails to shrink it below
    :data:`GMRES_PROGRESS` times its previous value (stagnation: a tolerance this dtype
    cannot reach costs one or two cycles, not ``maxiter``) or after ``maxiter`` products.
    Success is decided on the true residual. Returns ``(u, SolveInfo)``.
    """
    dtype = b.dtype
    tol = jnp.asarray(tol, dtype)
    n = b.size
    m = int(max(1, min(restart, n, maxiter)))
    cycles = max(1, -(-maxiter // m))
    scale = norm(b)
    unit = jnp.where((scale > 0) & jnp.isfinite(scale), scale, jnp.ones_like(scale))
    bf = jnp.ravel(b / unit)
    mv = _flat(matvec, b)

    def cycle(u, r, beta):
        """One GMRES(m) cycle from u with true residual r (norm beta); returns u and products."""
        V = jnp.zeros((m + 1, n), dtype).at[0].set(r / jnp.where(beta > 0, beta, 1.0))
        H = jnp.zeros((m + 1, m), dtype)
        cs = jnp.zeros((m,), dtype)
        sn = jnp.zeros((m,), dtype)
        g = jnp.zeros((m + 1,), dtype).at[0].set(beta)

        def arnoldi(i, V, cs, sn):
            """Step i: the new basis vector and H's column i, rotated; its Givens (c, s)."""
            w = mv(V[i])
            live = (jnp.arange(m + 1) <= i).astype(dtype)
            h = (V @ w) * live  # classical Gram-Schmidt, twice (CGS2)
            w = w - h @ V
            h2 = (V @ w) * live
            w = w - h2 @ V
            h = h + h2
            hn = plain_norm(w)
            col = h.at[i + 1].set(hn)

            def rotate(k, col):  # apply the earlier rotations to the new column
                a, bb = col[k], col[k + 1]
                new_a = cs[k] * a + sn[k] * bb
                new_b = -sn[k] * a + cs[k] * bb
                use = k < i
                col = col.at[k].set(jnp.where(use, new_a, a))
                return col.at[k + 1].set(jnp.where(use, new_b, bb))

            col = lax.fori_loop(0, m, rotate, col)
            a, bb = col[i], col[i + 1]
            rho = jnp.sqrt(a * a + bb * bb)
            c_ = jnp.where(rho > 0, a / jnp.where(rho > 0, rho, 1.0), 1.0)
            s_ = jnp.where(rho > 0, bb / jnp.where(rho > 0, rho, 1.0), 0.0)
            return safe_div(w, hn), col.at[i].set(rho).at[i + 1].set(0.0), c_, s_

        def skip(i, V, cs, sn):
            return jnp.zeros((n,), dtype), jnp.zeros((m + 1,), dtype), dtype.type(1), dtype.type(0)

        def body(i, c):
            # A fixed trip count, not a while_loop: under vmap a while_loop with a batched
            # exit test selects between old and new carry and holds the basis V twice.
            # Steps after convergence (|g_i| <= tol; monotone, since a skipped step leaves
            # g_{i+1} = 0) are skipped by the cond and write zeros.
            j, V, H, cs, sn, g = c
            active = jnp.abs(g[i]) > tol
            v, col, c_, s_ = lax.cond(active, arnoldi, skip, i, V, cs, sn)
            V = V.at[i + 1].set(v)
            H = H.at[:, i].set(col)
            cs = cs.at[i].set(c_)
            sn = sn.at[i].set(s_)
            g = g.at[i + 1].set(-s_ * g[i]).at[i].set(c_ * g[i])  # (c, s) = (1, 0): unchanged
            return j + active.astype(j.dtype), V, H, cs, sn, g

        j, V, H, cs, sn, g = lax.fori_loop(0, m, body, (jnp.asarray(0, jnp.int32), V, H, cs, sn, g))
        # Back substitution on the j×j upper-triangular block (unused rows: identity).
        idx = jnp.arange(m)
        used = idx < j
        R = jnp.where(used[:, None] & used[None, :], H[:m, :m], jnp.eye(m, dtype=dtype))
        y = jax.scipy.linalg.solve_triangular(R, jnp.where(used, g[:m], 0.0), lower=False)
        return u + jnp.append(jnp.where(used, y, 0.0), 0.0) @ V, j  # V[:m] would copy it

    def outer_cond(c):
        u, r, beta, prev, k, it, stalled = c
        return (it < cycles) & (beta > tol) & jnp.isfinite(beta) & ~stalled

    def outer_body(c):
        u, r, beta, prev, k, it, stalled = c
        u, j = cycle(u, r, beta)
        r = bf - mv(u)
        new = plain_norm(r)
        stalled = new > GMRES_PROGRESS * beta
        return u, r, new, beta, k + j + 1, it + 1, stalled

    u0 = jnp.zeros_like(bf)
    beta0 = plain_norm(bf)
    init = (u0, bf, beta0, beta0, jnp.asarray(0, jnp.int32), jnp.asarray(0, jnp.int32), False)
    u, r, beta, _, k, _, stalled = lax.while_loop(outer_cond, outer_body, init)
    finite = jnp.isfinite(beta) & jnp.all(jnp.isfinite(u))
    ok = finite & (beta <= tol)
    code = jnp.where(ok, 0, jnp.where(~finite, 2, jnp.where(stalled, 6, 1)))
    resid, code = _zero_rhs(scale, beta, code)
    u = jnp.where(finite, u, jnp.nan)  # a NaN b gives NaN, not the u = 0 of b = 0
    return (u * unit).reshape(b.shape), SolveInfo(k, resid, code)


def solve_neumann(jtvec, b, *, tol, maxiter):
    """u = Σ_{i=0}^{K} Mⁱ b with M = ``jtvec`` (the fixed-point map's transposed Jacobian).

    Stops early when a term is below tol·‖u‖. ``maxiter = 0`` gives u = b (Jacobian-free
    backprop, accepted by definition). The series fails (status nonfinite or stagnation)
    when a term is not smaller than the one before it — the terms of a convergent series
    shrink geometrically — or when anything is not finite. Returns ``(u, SolveInfo)``;
    its ``residual`` is the last term's norm relative to ‖u‖.
    """
    tol = jnp.asarray(tol, b.dtype)
    scale = norm(b)
    unit = jnp.where((scale > 0) & jnp.isfinite(scale), scale, jnp.ones_like(scale))
    b = b / unit

    def cond(c):
        term, total, tn, k, grew = c
        return (k < maxiter) & ~grew & (tn > tol * plain_norm(total)) & jnp.isfinite(tn)

    def body(c):
        term, total, tn, k, grew = c
        term = jtvec(term)
        new = plain_norm(term)
        return term, total + term, new, k + 1, ~(new < tn)

    start = (b, b, plain_norm(b), jnp.asarray(0, jnp.int32), jnp.asarray(False))
    term, total, tn, k, grew = lax.while_loop(cond, body, start)
    finite = jnp.all(jnp.isfinite(total)) & jnp.isfinite(tn)
    code = jnp.where(~finite, 2, jnp.where(grew, 6, 0))
    resid, code = _zero_rhs(scale, safe_div(tn, plain_norm(total)), code)
    return total * unit, SolveInfo(k, resid, code)


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
