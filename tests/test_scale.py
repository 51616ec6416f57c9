"""Scale-safe stopping: b × 1e-30 or × 1e+30 takes the same steps to the same relative accuracy."""

import jax.numpy as jnp
import numpy as np
import pytest

import glrjax

SCALES = [1e-30, 1.0, 1e30]


def _lasso():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20, 10))
    b = a @ np.where(rng.uniform(size=10) < 0.5, rng.standard_normal(10), 0.0)
    return a, b + 0.05 * rng.standard_normal(20)


def _cg(b, s, dtype):
    rng = np.random.default_rng(1)
    m = rng.standard_normal((12, 12))
    a = jnp.asarray(m @ m.T / 12 + np.eye(12), dtype)
    return glrjax.cg(lambda x, a: a @ x, jnp.asarray(s * b[:12], dtype), a, tol=1e-5, maxiter=100)


def _glr(b, s, dtype):
    y = jnp.asarray(s * b[:16].reshape(4, 4), dtype)
    g = glrjax.GridGraph.window(4, 4, radius=1)
    return glrjax.glr_filter(y, g, 2.0, tol=1e-5, maxiter=100)


def _proximal(method):
    def run(b, s, dtype):
        a, bb = _lasso()
        fn = glrjax.fista if method == "fista" else glrjax.pgd
        return fn(
            lambda x, p: p[0].T @ (p[0] @ x - p[1]),
            glrjax.prox.l1,
            jnp.zeros(10, dtype),
            (jnp.asarray(a, dtype), jnp.asarray(s * bb, dtype)),
            jnp.asarray(s * 0.5, dtype),
            tol=1e-5,
            maxiter=5000,
        )

    return run


def _tv(b, s, dtype):
    y = jnp.asarray(s * np.repeat(b[:4], 3), dtype)
    soft = lambda v, mu, t: jnp.sign(v) * jnp.maximum(jnp.abs(v) - t * mu, 0.0)  # noqa: E731
    sol, info = glrjax.primal_dual(
        lambda x, p: x[1:] - x[:-1],
        jnp.zeros_like(y),
        (y, jnp.asarray(s * 0.2, dtype)),
        grad_f=lambda x, p: x - p[0],
        prox_h=lambda v, p, t: soft(v, p[1], t),
        lipschitz=1.0,
        norm_K=2.0,
        tol=1e-5,
        maxiter=5000,
    )
    return sol.x, info


SOLVERS = {
    "cg": _cg,
    "glr_filter": _glr,
    "pgd": _proximal("pgd"),
    "fista": _proximal("fista"),
    "primal_dual": _tv,
}


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(SOLVERS))
def test_scaled_problem_same_steps_same_relative_accuracy(name, dtype):
    b = np.random.default_rng(2).standard_normal(20)
    runs = {s: SOLVERS[name](b, s, dtype) for s in SCALES}
    x1, info1 = runs[1.0]
    assert bool(info1.converged)
    for s, (x, info) in runs.items():
        assert bool(info.converged), (s, info)
        assert np.all(np.isfinite(np.asarray(x)))
        assert abs(int(info.iterations) - int(info1.iterations)) <= 1, (s, info, info1)
        ref = np.asarray(x1, np.float64)
        rel = np.linalg.norm(np.asarray(x, np.float64) / s - ref) / np.linalg.norm(ref)
        assert rel < (1e-4 if dtype == jnp.float32 else 1e-9), (s, rel)


@pytest.mark.parametrize("name", ["cg", "glr_filter", "pgd", "fista", "primal_dual"])
def test_zero_data_gives_zero_solution_legitimately(name):
    x, info = SOLVERS[name](np.ones(20), 0.0, jnp.float64)  # every datum times 0
    assert bool(info.converged) and int(info.result) == 0
    np.testing.assert_array_equal(np.asarray(x), 0.0)


def test_low_precision_dtypes_get_a_clear_error():
    for dtype in (jnp.float16, jnp.bfloat16):
        with pytest.raises(TypeError, match="float32"):
            glrjax.cg(lambda x, a: x, jnp.ones(3, dtype))
        with pytest.raises(TypeError, match="float32"):
            glrjax.pgd(lambda x, a: x, glrjax.prox.l1, jnp.ones(3, dtype), None, 0.1)
