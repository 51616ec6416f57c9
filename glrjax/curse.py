"""The curse of unrolling: how fast the Jacobian of an unrolled solver converges.

Scieur, Gidel, Bertrand and Pedregosa, "The Curse of Unrolling: Rate of Differentiating
Through Optimization", NeurIPS 2022. For the quadratic

    f(x, θ) = ½ xᵀH(θ)x − b(θ)ᵀx,   x*(θ) = H(θ)⁻¹b(θ),

a first-order method with step sizes fixed in advance has x_t − x* = P_t(H)(x₀ − x*),
where P_t is its residual polynomial (degree t, P_t(0) = 1). Differentiating in θ, with
∂H commuting with H (true for every family here),

    ∂x_t − ∂x* = P_t(H)(∂x₀ − ∂x*) + P_t′(H) ∂H (x₀ − x*),

    ‖∂x_t − ∂x*‖ ≤ sup|P_t|·‖∂x₀ − ∂x*‖ + sup|P_t′|·‖∂H‖·‖x₀ − x*‖   (sup over [ℓ, L]).

The second term is the curse: gradient descent with h = 2/(L+ℓ) has sup|P_t′|·L ≈
2t·e^(−2t/κ), a burn-in peak ≈ κ/e near t ≈ κ/2; Chebyshev's is ≈ 4t²e^(−2t/√κ), a
higher peak ≈ 4κ/e² near t ≈ √κ. With h ≤ 1/L the bound still peaks, but the error
itself decreases monotonically: for x₀ = 0 and ∂b = 0 each of its eigencomponents is
proportional to P_t(λ) − λP_t′(λ) = q^(t−1)(q + t(1 − q)), q = 1 − hλ ∈ [0, 1), which
decreases in t.

What is measured here: ∂x_t/∂θ for every t at once, by forward mode (``jax.jvp``)
through the unrolled iteration, for gradient descent (h = 1/L and h = 2/(L+ℓ)), heavy
ball, Chebyshev, CG and FISTA (on a quadratic, FISTA is Nesterov's method); the exact
∂x*/∂θ = H⁻¹(∂b − ∂H x*); the bound above for every method with fixed steps (all but CG,
whose polynomial depends on θ); and :func:`mode_errors`, the Jacobian error of each glrjax
gradient mode on the same problem.

The bound's sups are in closed form for gradient descent (sup|P_t| = r^t and sup|P_t′|
= t·h·r^(t−1), r = max(|1 − hℓ|, |1 − hL|)) and Chebyshev (sup|P_t| = 1/T_t(σ₀) and
sup|P_t′| = 2t²/((L − ℓ)T_t(σ₀)), σ₀ = (L + ℓ)/(L − ℓ), since |T_t′| ≤ t² on [−1, 1],
reached at ±1). For heavy ball and FISTA they are the maximum over a grid of 4001
points of [ℓ, L] (endpoints included) of the residual polynomial and its derivative,
evaluated by the method's own recurrence: a lower estimate of the sup, exact to the grid
resolution.

Choice of problem: the burn-in shows in the total Jacobian error only where the large
eigenvalues carry weight. :func:`spd_problem` (H(θ) = θH₀, x* spread over all of H₀'s
eigenvectors) shows it. On :func:`ridge_problem` (random target, ∂H = I) the
eigencomponents of ∂x* = −H⁻²b carry the weight 1/λ², so the smallest eigenvalue
dominates and no curve has a burn-in: the GD, heavy-ball, Chebyshev and CG errors decrease
monotonically (FISTA's ripple, never above its start). A correct result, not a bug.

Precision: everything runs in float64 whether or not ``jax_enable_x64`` is set; each
public function enables it for its own duration (``jax.enable_x64``) and returns numpy
float64 arrays. :func:`trajectory` is the traceable building block and follows the
caller's setting.

>>> from glrjax import curse
>>> q = curse.spd_problem(kappa=50.0)
>>> c = curse.curves(q, 200, methods=("gd-1/L", "gd-2/(L+l)"))
>>> t, ratio = curse.peak(c.error["gd-2/(L+l)"])
>>> int(t), round(float(ratio), 1)
(21, 3.2)
>>> curse.peak(c.error["gd-1/L"])[0]  # monotone: the largest error is the first
0
>>> bool((c.error["gd-2/(L+l)"] <= c.bound["gd-2/(L+l)"] * (1 + 1e-12)).all())
True
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from glrjax import _krylov
from glrjax._validate import check_maxiter
from glrjax.gradients import (
    Checkpointed,
    GradientMode,
    Implicit,
    Truncated,
    Unrolled,
    check_gradient,
)
from glrjax.iterate import Iteration, iterate
from glrjax.linear import cg

__all__ = [
    "BOUNDED",
    "METHODS",
    "Curves",
    "Quadratic",
    "bound",
    "curves",
    "errors",
    "exact_jacobian",
    "jacobians",
    "mode_errors",
    "peak",
    "residual_polynomial",
    "ridge_problem",
    "spd_problem",
    "trajectory",
]

METHODS = ("gd-1/L", "gd-2/(L+l)", "heavy-ball", "chebyshev", "cg", "fista")
BOUNDED = ("gd-1/L", "gd-2/(L+l)", "heavy-ball", "chebyshev", "fista")  # fixed steps
_GRID = 4001  # points of [ℓ, L] for the numerical sups (heavy ball, FISTA)


def _x64():
    """Context that enables float64 (``jax.enable_x64`` on new jax, experimental on old)."""
    ctx = getattr(jax, "enable_x64", None)
    if ctx is not None:
        return ctx(True)
    from jax.experimental import enable_x64  # jax < 0.5

    return enable_x64()


class Quadratic(NamedTuple):
    """f(x, θ) = ½ xᵀH(θ)x − b(θ)ᵀx with H(θ) = hess + θ·dhess, b(θ) = lin + θ·dlin.

    All arrays are numpy float64; ``dhess`` commutes with ``hess`` (so ∂P_t(H) = P_t′(H)∂H
    and the bound holds). ``ell`` and ``L`` are the extreme eigenvalues of H(θ₀): every
    method's step sizes are computed from them once and do not depend on θ.
    """

    name: str  # label, e.g. "spd κ=50 n=100"
    hess: np.ndarray  # (n, n) θ-independent part of H
    dhess: np.ndarray  # (n, n) ∂H/∂θ
    lin: np.ndarray  # (n,) θ-independent part of b
    dlin: np.ndarray  # (n,) ∂b/∂θ
    theta: float  # θ₀, where the Jacobians are taken
    x0: np.ndarray  # (n,) starting point, independent of θ (∂x₀ = 0)
    ell: float  # smallest eigenvalue of H(θ₀)
    L: float  # largest eigenvalue of H(θ₀)

    @property
    def kappa(self) -> float:
        """Condition number L/ℓ of H(θ₀)."""
        return self.L / self.ell


def _make(name, hess, dhess, lin, dlin, theta, x0, spectrum=None) -> Quadratic:
    h = hess + theta * dhess
    if not np.allclose(h @ dhess, dhess @ h, rtol=1e-10, atol=1e-10 * np.abs(h).max()):
        raise ValueError("∂H must commute with H(θ₀) for the bound to hold.")
    ell, L = np.linalg.eigvalsh(h)[[0, -1]] if spectrum is None else spectrum
    return Quadratic(name, hess, dhess, lin, dlin, float(theta), x0, float(ell), float(L))


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} must be a Python int.")
    if value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}.")
    return int(value)


def spd_problem(kappa: float = 50.0, n: int = 100, seed: int = 0) -> Quadratic:
    """Random SPD family H(θ) = θH₀ with eigenvalues of H₀ evenly spaced in [1, κ].

    H₀ = Q diag(λ) Qᵀ with Q a random rotation, b = H₀z (so x*(θ) = z/θ), x₀ = 0 and
    θ₀ = 1, hence ∂H = H₀, ‖∂H‖ = κ and ∂x* = −z. The coordinates of z in H₀'s
    eigenvectors are independent standard normals (the first ``n`` draws of
    ``numpy.random.default_rng(seed)``): x* is spread over every eigenvector, large
    eigenvalues included, which is what makes the burn-in visible.

    >>> q = spd_problem(kappa=10.0, n=5)
    >>> round(q.ell, 6), round(q.L, 6), q.x0.shape
    (1.0, 10.0, (5,))
    """
    if not (isinstance(kappa, numbers.Real) and kappa > 1):
        raise ValueError(f"kappa={kappa!r} must be a real number > 1, e.g. kappa=50.0.")
    n = _check_int(n, "n", 2)
    rng = np.random.default_rng(seed)
    coef = rng.standard_normal(n)  # z in the eigenbasis
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    q = q * np.sign(np.diag(r))  # a Haar-distributed rotation
    lam = np.linspace(1.0, float(kappa), n)
    h0 = (q * lam) @ q.T
    h0 = 0.5 * (h0 + h0.T)
    z = q @ coef
    zero = np.zeros(n)
    name = f"spd κ={kappa:g} n={n}"
    return _make(name, np.zeros((n, n)), h0, h0 @ z, zero, 1.0, zero, (1.0, float(kappa)))


def ridge_problem(
    n_samples: int = 120, n_features: int = 100, theta: float = 0.05, seed: int = 0, prior=False
) -> Quadratic:
    """Ridge regression min_w ½‖Xw − y‖²/m + ½θ‖w − w₀‖²: H(θ) = XᵀX/m + θI.

    X and y are standard normal (a random target); ∂H = I; b(θ) = Xᵀy/m + θw₀ with w₀ = 0,
    or a standard normal vector when ``prior`` (then the target depends on θ too). With
    w₀ = 0, ∂x* = −H⁻²b weighs each eigencomponent by 1/λ², so the small eigenvalues
    dominate the Jacobian error and there is no burn-in (see the module docstring).

    >>> q = ridge_problem(n_samples=30, n_features=10, theta=0.1)
    >>> q.hess.shape, bool(q.kappa > 1)
    ((10, 10), True)
    """
    m = _check_int(n_samples, "n_samples", 1)
    d = _check_int(n_features, "n_features", 1)
    if not (isinstance(theta, numbers.Real) and theta > 0):
        raise ValueError(f"theta={theta!r} must be > 0 (the ridge penalty), e.g. theta=0.05.")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, d))
    y = rng.standard_normal(m)
    w0 = rng.standard_normal(d) if prior else np.zeros(d)
    return _make(
        f"ridge m={m} d={d} θ={theta:g}",
        x.T @ x / m,
        np.eye(d),
        x.T @ y / m,
        w0,
        theta,
        np.zeros(d),
    )


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {METHODS}.")
    return method


def _schedule(method: str, ell: float, L: float, steps: int):
    """Per-step coefficients, as numpy float64 arrays of length ``steps``.

    Three-term methods: x_{t+1} = x_t − α_t ∇f(x_t) + β_t (x_t − x_{t−1}), x_{−1} = x₀.
    FISTA: y_t = x_t + γ_t (x_t − x_{t−1}), x_{t+1} = y_t − ∇f(y_t)/L; returns (1/L, γ).
    """
    if method == "gd-1/L":
        return np.full(steps, 1.0 / L), np.zeros(steps)
    if method == "gd-2/(L+l)" or (method == "chebyshev" and L - ell <= 1e-12 * L):
        return np.full(steps, 2.0 / (L + ell)), np.zeros(steps)
    if method == "heavy-ball":  # Polyak's optimal parameters for [ℓ, L]
        sl, sL = math.sqrt(ell), math.sqrt(L)
        return np.full(steps, 4.0 / (sL + sl) ** 2), np.full(steps, ((sL - sl) / (sL + sl)) ** 2)
    if method == "chebyshev":
        # P_t(λ) = T_t(σ(λ))/T_t(σ₀), σ(λ) = (L + ℓ − 2λ)/(L − ℓ); the three-term recurrence
        # of T_t gives x_{t+1} = ω_{t+1}(x_t − h∇f(x_t)) + (1 − ω_{t+1})x_{t−1}, h = 2/(L+ℓ),
        # ω_{t+1} = 2σ₀T_t(σ₀)/T_{t+1}(σ₀), computed through ρ_t = T_{t−1}(σ₀)/T_t(σ₀).
        h = 2.0 / (L + ell)
        s0 = (L + ell) / (L - ell)
        omega = np.ones(steps)
        rho = 1.0 / s0
        for t in range(1, steps):
            rho = 1.0 / (2.0 * s0 - rho)
            omega[t] = 2.0 * s0 * rho
        return h * omega, omega - 1.0
    if method == "fista":
        # Beck & Teboulle (2009): γ_k = (t_k − 1)/t_{k+1}, t_1 = 1, t_{k+1} = (1 + √(1 + 4t_k²))/2;
        # γ_0 multiplies x_0 − x_{−1} = 0 and γ_1 = 0.
        gamma = np.zeros(steps)
        tk = 1.0
        for k in range(1, steps):
            tn = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * tk * tk))
            gamma[k] = (tk - 1.0) / tn
            tk = tn
        return np.full(steps, 1.0 / L), gamma
    raise ValueError(f"method={method!r} has no fixed step schedule (CG adapts its steps).")


def _iterates(data, sched, theta, method: str):
    """x_0, …, x_steps from ``data = (hess, dhess, lin, dlin, x0)`` and the step schedule."""
    hess, dhess, lin, dlin, x0 = data
    H = hess + theta * dhess
    b = lin + theta * dlin

    def grad(x):
        return H @ x - b

    if method == "cg":
        mv = lambda v: H @ v  # noqa: E731

        def body(s, _):
            # Freeze a converged state: past round-off, CG's α and β are ratios of
            # rounding errors whose θ-derivatives are noise.
            done = s.rnorm <= 1e-13 * s.bnorm
            new = _krylov.cg_step(mv, s)
            s = jax.tree_util.tree_map(lambda a, c: jnp.where(done, a, c), s, new)
            return s, s.x

        _, xs = lax.scan(body, _krylov.cg_init(mv, b, x0), None, length=sched[0].shape[0])
    elif method == "fista":

        def body(carry, hg):
            x, x_prev = carry
            h, g = hg
            y = x + g * (x - x_prev)
            x_new = y - h * grad(y)
            return (x_new, x), x_new

        _, xs = lax.scan(body, (x0, x0), sched)
    else:

        def body(carry, ab):
            x, x_prev = carry
            a, m = ab
            x_new = x - a * grad(x) + m * (x - x_prev)
            return (x_new, x), x_new

        _, xs = lax.scan(body, (x0, x0), sched)
    return jnp.concatenate([x0[None], xs])


def _inputs(q: Quadratic, method: str, steps: int, dtype):
    data = tuple(jnp.asarray(a, dtype) for a in (q.hess, q.dhess, q.lin, q.dlin, q.x0))
    if method == "cg":  # CG adapts its steps: the schedule only carries the length
        sched = (jnp.zeros(steps, dtype), jnp.zeros(steps, dtype))
    else:
        sched = tuple(jnp.asarray(a, dtype) for a in _schedule(method, q.ell, q.L, steps))
    return data, sched


def trajectory(q: Quadratic, method: str, steps: int, theta) -> jax.Array:
    """Iterates x_0, …, x_steps of ``method`` on H(θ)x = b(θ), shape (steps + 1, n).

    A traceable function of ``theta`` (differentiate it with ``jax.jvp``/``jax.jacrev``).
    It computes in jax's default float dtype, float64 only with x64 enabled: call it
    inside ``jax.enable_x64(True)`` (as :func:`jacobians` does) for float64.
    """
    _check_method(method)
    steps = check_maxiter(steps, "steps")
    dtype = jnp.result_type(float)
    data, sched = _inputs(q, method, steps, dtype)
    return _iterates(data, sched, jnp.asarray(theta, dtype), method)


@functools.partial(jax.jit, static_argnames="method")
def _tangents(data, sched, theta, method):
    """Forward mode: ∂x_t/∂θ for every t, one jvp through the whole scan."""
    return jax.jvp(
        lambda th: _iterates(data, sched, th, method), (theta,), (jnp.ones_like(theta),)
    )[1]


def jacobians(q: Quadratic, method: str, steps: int) -> np.ndarray:
    """∂x_t/∂θ at θ₀ for t = 0, …, steps by forward mode, shape (steps + 1, n), float64."""
    _check_method(method)
    steps = check_maxiter(steps, "steps")
    with _x64():
        data, sched = _inputs(q, method, steps, jnp.float64)
        tangent = _tangents(data, sched, jnp.asarray(q.theta, jnp.float64), method)
        return np.asarray(tangent, np.float64)


def exact_jacobian(q: Quadratic) -> np.ndarray:
    """∂x*/∂θ at θ₀ = H⁻¹(∂b − ∂H x*), by forward mode through a dense solve, float64."""

    def solve(th):
        return jnp.linalg.solve(q.hess + th * q.dhess, q.lin + th * q.dlin)

    with _x64():
        _, tangent = jax.jvp(solve, (jnp.asarray(q.theta, jnp.float64),), (1.0,))
        return np.asarray(tangent, np.float64)


def errors(q: Quadratic, method: str, steps: int) -> np.ndarray:
    """‖∂x_t/∂θ − ∂x*/∂θ‖ for t = 0, …, steps (the Jacobian suboptimality), float64."""
    return np.linalg.norm(jacobians(q, method, steps) - exact_jacobian(q), axis=1)


def _polynomials(method: str, ell: float, L: float, steps: int, lam):
    """Yield (P_t(λ), P_t′(λ)) for t = 0, …, steps by the method's recurrence (numpy)."""
    p, dp = np.ones_like(lam), np.zeros_like(lam)
    pp, dpp = p, dp  # P_{-1} = P_0 = 1: x_{-1} = x_0
    yield p, dp
    if method == "fista":  # P_{k+1} = (1 − hλ)[(1 + γ_k)P_k − γ_k P_{k−1}]
        h, gamma = _schedule(method, ell, L, steps)
        for k in range(steps):
            y = (1 + gamma[k]) * p - gamma[k] * pp
            dy = (1 + gamma[k]) * dp - gamma[k] * dpp
            pp, dpp = p, dp
            p, dp = (1 - h[k] * lam) * y, -h[k] * y + (1 - h[k] * lam) * dy
            yield p, dp
        return
    alpha, beta = _schedule(method, ell, L, steps)
    for k in range(steps):  # P_{k+1} = (1 + β_k − α_kλ)P_k − β_k P_{k−1}
        c = 1 + beta[k] - alpha[k] * lam
        p, pp, dp, dpp = c * p - beta[k] * pp, p, c * dp - alpha[k] * p - beta[k] * dpp, dp
        yield p, dp


def residual_polynomial(method: str, ell: float, L: float, steps: int, lam):
    """P_t(λ) and P_t′(λ) for t = 0, …, steps at the points ``lam``, by the method's recurrence.

    Returns two numpy arrays of shape (steps + 1, len(lam)). Not defined for CG.

    >>> p, dp = residual_polynomial("gd-1/L", 1.0, 4.0, 2, [1.0, 4.0])
    >>> p[2].tolist(), dp[1].tolist()  # (1 − λ/4)², −1/4
    ([0.5625, 0.0], [-0.25, -0.25])
    """
    method = _check_method(method)
    if method not in BOUNDED:
        raise ValueError(f"method={method!r} has no fixed residual polynomial; use {BOUNDED}.")
    steps = check_maxiter(steps, "steps")
    lam = np.atleast_1d(np.asarray(lam, np.float64))
    p, dp = zip(*_polynomials(method, ell, L, steps, lam), strict=True)
    return np.array(p), np.array(dp)


def _sups(method: str, ell: float, L: float, steps: int):
    """sup over [ℓ, L] of |P_t| and |P_t′| for t = 0, …, steps (see the module docstring)."""
    t = np.arange(steps + 1, dtype=np.float64)
    chebyshev = method == "chebyshev" and L - ell > 1e-12 * L
    if method in ("gd-1/L", "gd-2/(L+l)") or (method == "chebyshev" and not chebyshev):
        h = _schedule(method, ell, L, 1)[0][0]
        r = max(abs(1 - h * ell), abs(1 - h * L))
        return r**t, t * h * r ** np.maximum(t - 1, 0)
    if chebyshev:
        # 1/T_t(σ₀) = 1/cosh(tβ) = 2e^(−tβ)/(1 + e^(−2tβ)), β = arccosh σ₀: no overflow.
        beta = np.arccosh((L + ell) / (L - ell))
        inv_t = 2 * np.exp(-t * beta) / (1 + np.exp(-2 * t * beta))
        return inv_t, 2 * t**2 / (L - ell) * inv_t
    grid = np.linspace(ell, L, _GRID)
    sups = [
        (np.abs(p).max(), np.abs(dp).max()) for p, dp in _polynomials(method, ell, L, steps, grid)
    ]
    return tuple(np.array(a) for a in zip(*sups, strict=True))


def bound(q: Quadratic, method: str, steps: int) -> np.ndarray:
    """The paper's bound sup|P_t|·‖∂x₀ − ∂x*‖ + sup|P_t′|·‖∂H‖·‖x₀ − x*‖, t = 0, …, steps.

    Defined for the methods with fixed steps (``BOUNDED``); CG raises ValueError.
    """
    method = _check_method(method)
    if method not in BOUNDED:
        raise ValueError(f"method={method!r} has no fixed-step bound; use one of {BOUNDED}.")
    steps = check_maxiter(steps, "steps")
    h = q.hess + q.theta * q.dhess
    xstar = np.linalg.solve(h, q.lin + q.theta * q.dlin)
    dxstar = np.linalg.solve(h, q.dlin - q.dhess @ xstar)
    sup_p, sup_dp = _sups(method, q.ell, q.L, steps)
    start = np.linalg.norm(0.0 - dxstar)  # ∂x₀ = 0
    return sup_p * start + sup_dp * np.linalg.norm(q.dhess, 2) * np.linalg.norm(q.x0 - xstar)


class Curves(NamedTuple):
    """Jacobian error against iterations, per method, with the bounds."""

    t: np.ndarray  # int64 iteration counts
    error: dict  # method -> ‖∂x_t − ∂x*‖ at each t (float64)
    bound: dict  # method -> the bound at each t, for the methods in BOUNDED
    start: float  # ‖∂x₀ − ∂x*‖ = ‖∂x*‖, the error before any step
    kappa: float  # condition number of H(θ₀)
    name: str  # the problem's label

    def to_json(self) -> dict:
        """Plain lists and floats, for ``json.dump``."""
        return {
            "problem": self.name,
            "kappa": self.kappa,
            "start": self.start,
            "t": self.t.tolist(),
            "error": {k: v.tolist() for k, v in self.error.items()},
            "bound": {k: v.tolist() for k, v in self.bound.items()},
        }


def _ts(ts) -> np.ndarray:
    if isinstance(ts, numbers.Integral) and not isinstance(ts, bool):
        return np.arange(check_maxiter(int(ts), "ts") + 1)
    t = np.unique(np.asarray(ts))
    if t.size == 0 or not np.issubdtype(t.dtype, np.integer) or t[0] < 0:
        raise ValueError(f"ts={ts!r} must be an int T (for 0..T) or non-negative ints.")
    return t


def curves(q: Quadratic, ts=200, methods: Sequence[str] = METHODS) -> Curves:
    """Jacobian error of each method at the iteration counts ``ts``, with the bounds.

    Args:
        q: the problem (:func:`spd_problem`, :func:`ridge_problem`).
        ts: an int T (t = 0, …, T) or a sequence of non-negative iteration counts.
        methods: names from ``METHODS``.

    Returns:
        :class:`Curves`; ``curves.error[m][i]`` is ‖∂x_t − ∂x*‖ at ``t = curves.t[i]``.
    """
    t = _ts(ts)
    steps = max(int(t[-1]), 1)
    methods = [_check_method(m) for m in methods]
    exact = exact_jacobian(q)
    err, bnd = {}, {}
    for m in methods:
        jac = jacobians(q, m, steps)
        err[m] = np.linalg.norm(jac - exact, axis=1)[t]
        if m in BOUNDED:
            bnd[m] = bound(q, m, steps)[t]
    start = float(np.linalg.norm(exact))  # x₀ does not depend on θ
    return Curves(t, err, bnd, start, q.kappa, q.name)


def peak(curve) -> tuple[int, float]:
    """(index of the largest value, largest value / first value) of a curve: the burn-in."""
    curve = np.asarray(curve)
    i = int(np.argmax(curve))
    return i, float(curve[i] / curve[0])


def _gd(q: Quadratic, theta, step, maxiter: int, gradient: GradientMode):
    """Gradient descent x ← x − h(H(θ)x − b(θ)) on the glrjax engine, to tol = 0."""
    H = q.hess + theta * q.dhess
    b = q.lin + theta * q.dlin
    bnorm = _krylov.norm(b)

    def init(p, x0):
        H, b, _ = p
        return x0, H @ x0 - b

    def step_fn(state, p, k):
        H, b, h = p
        x = state[0] - h * state[1]
        return x, H @ x - b

    it = Iteration(
        init=init,
        step=step_fn,
        residual=lambda s: _krylov.norm(s[1]) / bnorm,
        solution=lambda s: s[0],
        optimality=lambda x, p: -p[2] * (p[0] @ x - p[1]),  # T(x) − x, T = GD step
        symmetric=True,
    )
    return iterate(it, (H, b, step), jnp.asarray(q.x0), tol=0.0, maxiter=maxiter, gradient=gradient)


_SOLVERS = ("cg", "gd-1/L", "gd-2/(L+l)")


def mode_errors(
    q: Quadratic,
    modes: Sequence[GradientMode] | None = None,
    maxiters: Sequence[int] = (1, 2, 5, 10, 20, 50, 100),
    solver: str = "gd-2/(L+l)",
) -> dict:
    """Relative Jacobian error ‖∂x_K − ∂x*‖/‖∂x*‖ of each glrjax gradient mode.

    The solver (``glrjax.cg``, or gradient descent built on ``glrjax.iterate``) runs
    exactly K = ``maxiter`` steps (tol = 0) and ∂x_K/∂θ is taken by reverse mode
    (``jax.jacrev``) through the mode under test. Unrolled and Checkpointed follow the
    unrolled curve (burn-in included); Implicit differentiates the optimality condition
    at x_K and has no burn-in.

    Args:
        q: the problem.
        modes: gradient modes (default: Unrolled, Checkpointed(every=5),
            Truncated(last=10), Implicit(tol=1e-12, maxiter=2000)).
        maxiters: iteration counts K.
        solver: ``"cg"``, ``"gd-1/L"`` or ``"gd-2/(L+l)"``.

    Returns:
        ``{mode: numpy array of errors, one per K}`` (modes are hashable).
    """
    if solver not in _SOLVERS:
        raise ValueError(f"solver={solver!r} must be one of {_SOLVERS}.")
    if modes is None:
        modes = [
            Unrolled(),
            Checkpointed(every=5),
            Truncated(last=10),
            Implicit(tol=1e-12, maxiter=2000),
        ]
    modes = [check_gradient(m) for m in modes]
    maxiters = [check_maxiter(k, "maxiters") for k in maxiters]
    exact = exact_jacobian(q)
    scale = max(float(np.linalg.norm(exact)), np.finfo(np.float64).tiny)
    step = float(_schedule(solver, q.ell, q.L, 1)[0][0]) if solver != "cg" else 0.0
    out = {}
    with _x64():
        theta = jnp.asarray(q.theta, jnp.float64)
        for mode in modes:
            errs = []
            for k in maxiters:
                if solver == "cg":

                    def solve(th, k=k, mode=mode):
                        H = q.hess + th * q.dhess
                        b = q.lin + th * q.dlin
                        x, _ = cg(
                            lambda v, a: a @ v, b, H, x0=q.x0, tol=0.0, maxiter=k, gradient=mode
                        )
                        return x
                else:

                    def solve(th, k=k, mode=mode):
                        return _gd(q, th, jnp.float64(step), k, mode)[0]

                jac = np.asarray(jax.jit(jax.jacrev(solve))(theta), np.float64)
                errs.append(np.linalg.norm(jac - exact) / scale)
            out[mode] = np.asarray(errs)
    return out
