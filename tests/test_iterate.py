"""The engine on toy iterations: every mode, pytree states, the restart hook, status codes."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import glrjax
from glrjax.iterate import Iteration, iterate

MODES = [
    glrjax.Unrolled(),
    glrjax.Checkpointed(every=4),
    glrjax.Truncated(last=3),
    glrjax.Implicit(tol=1e-12),
]


class _State(NamedTuple):
    x: dict  # a pytree iterate {"u": ..., "v": ...}
    change: jax.Array  # ‖x_{k+1} − x_k‖


def _problem(n=6, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, n))
    a = m @ m.T / n + np.eye(n)
    return a, rng.standard_normal(n), rng.standard_normal(n)


def _richardson(h):
    """x ← x − h(Ax − b) on a dict {"u": first half, "v": second half} (a pytree state)."""

    def join(x):
        return jnp.concatenate([x["u"], x["v"]])

    def split(z):
        k = z.shape[0] // 2
        return {"u": z[:k], "v": z[k:]}

    def step(state, p, k):
        a, b = p
        z = join(state.x)
        new = z - h * (a @ z - b)
        return _State(split(new), jnp.linalg.norm(new - z))

    return Iteration(
        init=lambda p, x0: _State(x0, jnp.asarray(1e300, p[1].dtype)),
        step=step,
        residual=lambda s: s.change,
        solution=lambda s: s.x,
        optimality=lambda x, p: split(-h * (p[0] @ join(x) - p[1])),
    )


@pytest.mark.parametrize("mode", MODES, ids=repr)
def test_pytree_state_forward_and_gradient_in_every_mode(mode):
    a, b, w = _problem()
    h = 1.0 / np.linalg.eigvalsh(a).max()
    it = _richardson(h)
    x0 = {"u": jnp.zeros(3), "v": jnp.zeros(3)}

    def solve(b):
        return iterate(it, (jnp.asarray(a), b), x0, tol=1e-13, maxiter=2000, gradient=mode)

    x, info = solve(jnp.asarray(b))
    exact = np.linalg.solve(a, b)
    np.testing.assert_allclose(np.concatenate([x["u"], x["v"]]), exact, atol=1e-10)
    assert bool(info.converged) and int(info.result) == int(glrjax.RESULTS.successful)
    grad = jax.grad(lambda b: jnp.concatenate([solve(b)[0]["u"], solve(b)[0]["v"]]) @ w)(
        jnp.asarray(b)
    )
    if isinstance(mode, glrjax.Truncated):  # 3 Richardson steps from the cut: Σ_{i<3}(I−hA)^i h
        m = np.eye(6) - h * a
        ref = sum(np.linalg.matrix_power(m, i) for i in range(3)) * h
        np.testing.assert_allclose(grad, ref.T @ w, rtol=1e-9)
    else:
        np.testing.assert_allclose(grad, np.linalg.solve(a.T, w), rtol=1e-8)


def test_truncated_with_fewer_steps_than_last_equals_unrolled_exactly():
    a, b, w = _problem(seed=1)
    it = _richardson(1.0 / np.linalg.eigvalsh(a).max())
    x0 = {"u": jnp.zeros(3), "v": jnp.zeros(3)}

    def loss(b, mode):
        x, info = iterate(it, (jnp.asarray(a), b), x0, tol=1e-3, maxiter=500, gradient=mode)
        return jnp.concatenate([x["u"], x["v"]]) @ w, info

    (_, info), g_unrolled = jax.value_and_grad(loss, has_aux=True)(
        jnp.asarray(b), glrjax.Unrolled()
    )
    n = int(info.iterations)
    assert 3 < n < 400
    g_trunc = jax.grad(lambda b: loss(b, glrjax.Truncated(last=n + 7))[0])(jnp.asarray(b))
    np.testing.assert_array_equal(g_trunc, g_unrolled)


def test_checkpoint_segments_padding_leaves_results_unchanged():
    """maxiter = 10 with segments of 4: 3 segments, the last two steps padded (frozen)."""
    a, b, w = _problem(seed=2)
    it = _richardson(0.5 / np.linalg.eigvalsh(a).max())
    x0 = {"u": jnp.zeros(3), "v": jnp.zeros(3)}

    def loss(b, mode):
        x, info = iterate(it, (jnp.asarray(a), b), x0, tol=0.0, maxiter=10, gradient=mode)
        return jnp.concatenate([x["u"], x["v"]]) @ w, info

    (v1, i1), g1 = jax.value_and_grad(loss, has_aux=True)(jnp.asarray(b), glrjax.Unrolled())
    (v2, i2), g2 = jax.value_and_grad(loss, has_aux=True)(
        jnp.asarray(b), glrjax.Checkpointed(every=4)
    )
    assert int(i1.iterations) == int(i2.iterations) == 10
    assert int(i1.result) == int(glrjax.RESULTS.max_steps_reached)
    np.testing.assert_allclose(v1, v2, rtol=1e-14)
    np.testing.assert_allclose(g1, g2, rtol=1e-12)


def test_restart_hook_is_what_truncated_differentiates():
    """A toy whose state carries a derived quantity d = 2x: the restart hook rebuilds it."""

    class S(NamedTuple):
        x: jax.Array
        d: jax.Array  # derived: 2x (stale after a cut unless rebuilt)
        res: jax.Array

    def step(s, theta, k):
        x = 0.5 * s.x + 0.25 * s.d * 0 + theta  # converges to 2θ
        return S(x, 2 * x, jnp.abs(x - s.x))

    calls = []

    def restart(theta, x):
        calls.append(1)
        return S(x, 2 * x, jnp.asarray(1e300))

    it = Iteration(
        init=lambda th, x0: S(x0, 2 * x0, jnp.asarray(1e300)),
        step=step,
        residual=lambda s: s.res,
        solution=lambda s: s.x,
        optimality=lambda x, th: 0.5 * x + th - x,
        restart=restart,
    )
    mode = glrjax.Truncated(last=2)
    g = jax.grad(
        lambda th: iterate(it, th, jnp.zeros(()), tol=1e-12, maxiter=200, gradient=mode)[0]
    )(1.0)
    assert calls  # the hook was used
    # Two steps of x ← x/2 + θ from a constant cut: ∂x/∂θ = 1 + 1/2.
    np.testing.assert_allclose(g, 1.5, rtol=1e-12)


def test_status_codes_from_the_engine():
    a, b, _ = _problem(seed=3)
    it = _richardson(1.0 / np.linalg.eigvalsh(a).max())
    x0 = {"u": jnp.zeros(3), "v": jnp.zeros(3)}
    p = (jnp.asarray(a), jnp.asarray(b))
    R = glrjax.RESULTS
    for mode in MODES:
        _, info = iterate(it, p, x0, tol=1e-13, maxiter=3, gradient=mode)
        assert int(info.result) == R.max_steps_reached and not bool(info.converged)
        x, info = iterate(
            it, (p[0], p[1].at[0].set(jnp.nan)), x0, tol=1e-9, maxiter=50, gradient=mode
        )
        assert int(info.result) == R.nonfinite and np.all(np.isnan(x["u"]))
    # A certify hook that disagrees with the running residual: uncertified, not converged.
    bad = it._replace(certify=lambda s, p: jnp.asarray(1.0))
    _, info = iterate(bad, p, x0, tol=1e-9, maxiter=2000, gradient=glrjax.Unrolled())
    assert int(info.result) == R.uncertified and float(info.residual) == 1.0
    # A solver-specific status stops at once and poisons the solution.
    broke = it._replace(status=lambda s: jnp.asarray(R.breakdown, jnp.int32))
    x, info = iterate(broke, p, x0, tol=1e-9, maxiter=50, gradient=glrjax.Implicit())
    assert int(info.result) == R.breakdown and int(info.iterations) == 0
    assert np.all(np.isnan(x["v"]))
    # Under vmap the codes are per problem.
    bs = jnp.stack([p[1], p[1].at[0].set(jnp.nan)])
    _, info = jax.vmap(
        lambda b: iterate(it, (p[0], b), x0, tol=1e-9, maxiter=500, gradient=glrjax.Unrolled())
    )(bs)
    assert info.result.tolist() == [R.successful, R.nonfinite]
    assert "maxiter" in R.message(R.max_steps_reached)


def test_atol_is_measured_against_the_scale_hook():
    a, b, _ = _problem(seed=4)
    it = _richardson(1.0 / np.linalg.eigvalsh(a).max())._replace(scale=lambda s: jnp.asarray(1e6))
    x0 = {"u": jnp.zeros(3), "v": jnp.zeros(3)}
    p = (jnp.asarray(a), jnp.asarray(b))
    _, tight = iterate(it, p, x0, tol=1e-12, maxiter=5000, gradient=glrjax.Unrolled())
    # atol / scale = 1e-2 / 1e6: effectively rtol + 1e-8; stops earlier than rtol alone.
    _, loose = iterate(it, p, x0, tol=1e-12, atol=1e-2, maxiter=5000, gradient=glrjax.Unrolled())
    assert int(loose.iterations) < int(tight.iterations)
    assert float(loose.residual) <= 1e-12 + 1e-8


# ------------------------------------------------- certified convergence (issue: peers' tests)


def test_cg_on_a_nearly_singular_operator_is_not_flagged_converged():
    """Rank-3 PSD 4×4 matrix with 1e-17 rounding asymmetry, b outside its range: CG's
    recursive residual reaches 1e-10 while x ~ 1e15 and ‖b − Ax‖/‖b‖ ~ 1 (lineax's case)."""
    rng = np.random.default_rng(1)
    v = rng.standard_normal((4, 3))
    m = v @ v.T + 1e-17 * rng.standard_normal((4, 4))
    b = rng.standard_normal(4)
    for mode in MODES:
        x, info = glrjax.cg(
            lambda x, a: a @ x, jnp.asarray(b), jnp.asarray(m), tol=1e-10, maxiter=50, gradient=mode
        )
        true = np.linalg.norm(b - m @ np.asarray(x)) / np.linalg.norm(b)
        assert true > 0.1
        assert not bool(info.converged)
        assert int(info.result) == glrjax.RESULTS.uncertified
        assert float(info.residual) > 0.1  # the true residual is what Info reports


def _l0_stuck_at_threshold(method):
    """f = ½·1e-7·x², ℓ0 threshold √(2λt) = 1: from x0 = 1 + 1.5e-7 one step moves 1e-7
    (relative change 1e-7 ≤ tol) to x1 = 1 + 5e-8, whose next prox step jumps to 0: the
    running residual says converged, the fixed-point residual at x1 is 1."""
    fn = glrjax.fista if method == "fista" else glrjax.pgd
    return fn(
        lambda x, a: a * x,
        glrjax.prox.l0,
        jnp.asarray([1.0 + 1.5e-7]),
        1e-7,
        0.5,
        step=1.0,
        tol=1e-6,
        maxiter=50,
    )


@pytest.mark.parametrize("method", ["pgd", "fista"])
def test_proximal_solver_certifies_the_returned_point(method):
    x, info = _l0_stuck_at_threshold(method)
    assert int(info.iterations) == 1
    assert not bool(info.converged) and int(info.result) == glrjax.RESULTS.uncertified
    np.testing.assert_allclose(float(info.residual), 1.0)


def test_primal_dual_certifies_the_returned_point():
    """The same ℓ0 trap as the primal prox of Condat–Vũ (K = 1e-12·I, a negligible dual)."""
    sol, info = glrjax.primal_dual(
        lambda x, a: 1e-12 * x,
        jnp.asarray([1.0 + 1.5e-7]),
        None,
        grad_f=lambda x, a: 1e-7 * x,
        prox_g=lambda v, a, t: glrjax.prox.l0(v, 0.5, t),
        prox_h=lambda v, a, t: v,
        tau=1.0,
        sigma=1e-3,
        lipschitz=1e-7,
        norm_K=1e-12,
        tol=1e-6,
        maxiter=50,
    )
    assert int(info.iterations) == 1
    assert not bool(info.converged) and int(info.result) == glrjax.RESULTS.uncertified
