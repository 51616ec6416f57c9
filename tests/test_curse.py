"""glrjax.curse: Jacobian-error curves of unrolled solvers against closed forms and the paper.

References are independent of the code under test: dense numpy solves, Chebyshev
polynomials from numpy.polynomial, textbook loops written here, central finite
differences, reverse mode, and the numbers of DESIGN.md §3 (an exact computation made
outside this code).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.polynomial import chebyshev as npcheb

import glrjax
from glrjax import curse

STEPS = 3000


@pytest.fixture(scope="module", params=[50.0, 200.0], ids=["kappa50", "kappa200"])
def spd(request):
    q = curse.spd_problem(kappa=request.param)
    return q, curse.curves(q, STEPS)


def numpy_exact(q):
    """∂x*/∂θ = H⁻¹(∂b − ∂H x*), dense numpy."""
    h = q.hess + q.theta * q.dhess
    xstar = np.linalg.solve(h, q.lin + q.theta * q.dlin)
    return np.linalg.solve(h, q.dlin - q.dhess @ xstar), xstar


# --- the problem families -------------------------------------------------------------


def test_spd_problem_has_the_chosen_spectrum_and_solution():
    q = curse.spd_problem(kappa=30.0, n=40, seed=3)
    lam = np.linalg.eigvalsh(q.hess + q.theta * q.dhess)
    np.testing.assert_allclose(lam, np.linspace(1.0, 30.0, 40), atol=1e-10)
    assert math.isclose(q.kappa, 30.0, rel_tol=1e-10)
    # x*(θ) = z/θ with b = H₀z, so ∂x* = −x* at θ₀ = 1.
    dx, xstar = numpy_exact(q)
    np.testing.assert_allclose(dx, -xstar, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "q",
    [curse.spd_problem(kappa=20.0, n=15), curse.ridge_problem(40, 15, 0.3, prior=True)],
    ids=["spd", "ridge-prior"],
)
def test_exact_jacobian_matches_numpy_and_finite_differences(q):
    ref, _ = numpy_exact(q)
    np.testing.assert_allclose(curse.exact_jacobian(q), ref, rtol=1e-10, atol=1e-12)

    def xstar(th):
        return np.linalg.solve(q.hess + th * q.dhess, q.lin + th * q.dlin)

    eps = 1e-6
    fd = (xstar(q.theta + eps) - xstar(q.theta - eps)) / (2 * eps)
    np.testing.assert_allclose(curse.exact_jacobian(q), fd, rtol=1e-6, atol=1e-8)


# --- the iterations and their Jacobians -------------------------------------------------


def numpy_runs(q, steps):
    """Textbook loops at θ₀ (numpy), one per method with fixed steps."""
    h = q.hess + q.theta * q.dhess
    b = q.lin + q.theta * q.dlin
    ell, L = q.ell, q.L
    sl, sL = math.sqrt(ell), math.sqrt(L)

    def momentum(step, mom):
        xs, x, xp = [q.x0], q.x0, q.x0
        for _ in range(steps):
            x, xp = x - step * (h @ x - b) + mom * (x - xp), x
            xs.append(x)
        return np.array(xs)

    def chebyshev():  # Saad, Iterative Methods §12.1 form: x_{t+1} from ρ_t
        theta_, delta = (L + ell) / 2, (L - ell) / 2
        sigma = theta_ / delta
        rho = 1 / sigma
        x = q.x0
        d = (b - h @ x) / theta_
        xs = [x]
        for _ in range(steps):
            x = x + d
            xs.append(x)
            rho_new = 1 / (2 * sigma - rho)
            d = rho_new * rho * d + 2 * rho_new / delta * (b - h @ x)
            rho = rho_new
        return np.array(xs)

    def fista():  # Beck & Teboulle with the identity prox
        xs, x, y, t = [q.x0], q.x0, q.x0, 1.0
        for _ in range(steps):
            xn = y - (h @ y - b) / L
            tn = (1 + math.sqrt(1 + 4 * t * t)) / 2
            y = xn + (t - 1) / tn * (xn - x)
            x, t = xn, tn
            xs.append(x)
        return np.array(xs)

    return {
        "gd-1/L": momentum(1 / L, 0.0),
        "gd-2/(L+l)": momentum(2 / (L + ell), 0.0),
        "heavy-ball": momentum(4 / (sL + sl) ** 2, ((sL - sl) / (sL + sl)) ** 2),
        "chebyshev": chebyshev(),
        "fista": fista(),
    }


def test_trajectories_match_textbook_loops():
    q = curse.ridge_problem(30, 12, 0.2)
    for method, ref in numpy_runs(q, 40).items():
        x = np.asarray(curse.trajectory(q, method, 40, q.theta))
        np.testing.assert_allclose(x, ref, rtol=1e-10, atol=1e-12, err_msg=method)
    xs = np.asarray(curse.trajectory(q, "cg", 40, q.theta))
    xstar = numpy_exact(q)[1]
    assert np.linalg.norm(xs[-1] - xstar) <= 1e-10 * np.linalg.norm(xstar)


@pytest.mark.parametrize("method", curse.METHODS)
def test_forward_mode_jacobians_match_reverse_mode_and_finite_differences(method):
    q = curse.ridge_problem(30, 12, 0.2, prior=True)
    steps = 25
    fwd = curse.jacobians(q, method, steps)
    rev = np.asarray(jax.jacrev(lambda th: curse.trajectory(q, method, steps, th))(q.theta))
    assert fwd.shape == rev.shape == (steps + 1, 12) and fwd.dtype == np.float64
    np.testing.assert_allclose(fwd, rev, rtol=1e-10, atol=1e-12)
    eps = 1e-6
    fd = (
        np.asarray(curse.trajectory(q, method, steps, q.theta + eps))
        - np.asarray(curse.trajectory(q, method, steps, q.theta - eps))
    ) / (2 * eps)
    np.testing.assert_allclose(fwd, fd, rtol=1e-5, atol=1e-7)


# --- the residual polynomials and the bounds --------------------------------------------


def test_residual_polynomials_match_closed_forms():
    ell, L, steps = 1.0, 40.0, 30
    lam = np.linspace(ell, L, 301)[1:-1]  # interior: U_{t-1} by sin(tφ)/sin φ below
    sig = (L + ell - 2 * lam) / (L - ell)
    s0 = (L + ell) / (L - ell)
    p, dp = curse.residual_polynomial("chebyshev", ell, L, steps, lam)
    hb_p, _ = curse.residual_polynomial("heavy-ball", ell, L, steps, lam)
    gd_p, gd_dp = curse.residual_polynomial("gd-2/(L+l)", ell, L, steps, lam)
    h = 2 / (L + ell)
    m = ((math.sqrt(L) - 1) / (math.sqrt(L) + 1)) ** 2
    phi = np.arccos(sig)
    for t in range(steps + 1):
        c = [0] * t + [1]
        tt = npcheb.chebval(s0, c)
        np.testing.assert_allclose(p[t], npcheb.chebval(sig, c) / tt, atol=1e-12)
        d = npcheb.chebval(sig, npcheb.chebder(c)) * (-2 / (L - ell)) / tt
        np.testing.assert_allclose(dp[t], d, atol=1e-12)
        np.testing.assert_allclose(gd_p[t], (1 - h * lam) ** t, atol=1e-12)
        np.testing.assert_allclose(gd_dp[t], -t * h * (1 - h * lam) ** max(t - 1, 0), atol=1e-12)
        # Polyak: P_t = m^{t/2}[T_t(σ) + U_{t−1}(σ)(y₁ − σ)], y₁ = (1 − hλ)/√m.
        y1 = (1 - 4 / (math.sqrt(L) + 1) ** 2 * lam) / math.sqrt(m)
        u = np.sin(t * phi) / np.sin(phi)
        ref = m ** (t / 2) * (npcheb.chebval(sig, c) + u * (y1 - sig))
        np.testing.assert_allclose(hb_p[t], ref, atol=1e-12)


@pytest.mark.parametrize("method", curse.BOUNDED)
def test_polynomials_describe_the_iterates(method):
    """x_t − x* = P_t(H)(x₀ − x*), checked in H's eigenbasis."""
    q = curse.ridge_problem(30, 12, 0.2)
    h = q.hess + q.theta * q.dhess
    lam, vec = np.linalg.eigh(h)
    xstar = numpy_exact(q)[1]
    xs = np.asarray(curse.trajectory(q, method, 20, q.theta))
    p, _ = curse.residual_polynomial(method, q.ell, q.L, 20, lam)
    pred = xstar + (p * (vec.T @ (q.x0 - xstar))) @ vec.T
    np.testing.assert_allclose(xs, pred, rtol=1e-9, atol=1e-11)


def grid_bound(q, method, steps):
    """The bound with sups over a fine grid from independent closed forms (numpy)."""
    lam = np.linspace(q.ell, q.L, 20001)
    t = np.arange(steps + 1)[:, None]
    if method == "chebyshev":
        sig = (q.L + q.ell - 2 * lam) / (q.L - q.ell)
        s0 = (q.L + q.ell) / (q.L - q.ell)
        rows = []
        for k in range(steps + 1):
            c = [0] * k + [1]
            tt = npcheb.chebval(s0, c)
            p = npcheb.chebval(sig, c) / tt
            dp = npcheb.chebval(sig, npcheb.chebder(c)) * 2 / (q.L - q.ell) / tt
            rows.append((np.abs(p).max(), np.abs(dp).max()))
        sp, sdp = np.array(rows).T
    else:
        h = 1 / q.L if method == "gd-1/L" else 2 / (q.L + q.ell)
        sp = np.abs((1 - h * lam) ** t).max(axis=1)
        sdp = np.abs(t * h * (1 - h * lam) ** np.maximum(t - 1, 0)).max(axis=1)
    dx, xstar = numpy_exact(q)
    return sp * np.linalg.norm(dx) + sdp * np.linalg.norm(q.dhess, 2) * np.linalg.norm(xstar)


@pytest.mark.parametrize("method", ["gd-1/L", "gd-2/(L+l)", "chebyshev"])
def test_closed_form_bounds_match_grid_sups(method):
    q = curse.spd_problem(kappa=25.0, n=20)
    np.testing.assert_allclose(curse.bound(q, method, 60), grid_bound(q, method, 60), rtol=1e-9)


def test_measured_curves_stay_under_the_bounds(spd):
    q, c = spd
    for m, b in c.bound.items():
        # Past ~1e-14 the measured error is round-off, which no bound covers.
        assert np.all(c.error[m] <= b * (1 + 1e-9) + 1e-12 * c.start), m
    assert set(c.bound) == set(curse.BOUNDED)


def test_bound_burn_in_peaks_follow_the_paper(spd):
    """Bound/start ≈ 1 + 2t·e^(−2t/κ) (GD) and 4t²e^(−2t/√κ) (Chebyshev), DESIGN.md §3."""
    q, c = spd
    k = q.kappa
    t, ratio = curse.peak(c.bound["gd-2/(L+l)"])
    assert abs(t - k / 2) <= 0.05 * k / 2 and abs(ratio - k / math.e) <= 0.1 * k / math.e
    t, ratio = curse.peak(c.bound["chebyshev"])
    assert abs(t - math.sqrt(k)) <= 0.2 * math.sqrt(k)
    assert abs(ratio - 4 * k / math.e**2) <= 0.1 * 4 * k / math.e**2


# --- the measured curves ----------------------------------------------------------------


def test_gd_short_step_is_monotone(spd):
    q, c = spd
    e = c.error["gd-1/L"]
    assert np.all(np.diff(e) <= 1e-12 * c.start)


def test_gd_long_step_has_a_burn_in_peak_near_half_kappa(spd):
    q, c = spd
    t, ratio = curse.peak(c.error["gd-2/(L+l)"])
    assert abs(t - q.kappa / 2) <= 0.25 * q.kappa / 2
    assert ratio > 2


def test_chebyshev_peaks_near_sqrt_kappa_and_higher_than_gd(spd):
    q, c = spd
    t, ratio = curse.peak(c.error["chebyshev"])
    assert abs(t - math.sqrt(q.kappa)) <= 0.5 * math.sqrt(q.kappa)
    assert ratio > curse.peak(c.error["gd-2/(L+l)"])[1]


def test_every_curve_tends_to_zero(spd):
    q, c = spd
    assert c.t[-1] == STEPS and math.isclose(c.start, np.linalg.norm(numpy_exact(q)[0]))
    for m, e in c.error.items():
        assert e[0] == pytest.approx(c.start, rel=1e-12), m
        assert e[-1] <= 1e-6 * c.start, (m, e[-1] / c.start)


def test_design_numbers_are_reproduced(spd):
    """DESIGN.md §3: GD h = 2/(L+ℓ) and heavy ball peaks, from an independent computation."""
    q, c = spd
    expected = {50.0: ((21, 3.2), (9, 14.0)), 200.0: ((97, 10.8), (20, 92.0))}[q.kappa]
    for m, (t_ref, r_ref) in zip(("gd-2/(L+l)", "heavy-ball"), expected, strict=True):
        t, ratio = curse.peak(c.error[m])
        assert t == t_ref and ratio == pytest.approx(r_ref, rel=0.02), (m, t, ratio)


def test_ridge_curves_have_no_burn_in():
    """Random target, ∂H = I: the smallest eigenvalue dominates; monotone (DESIGN.md §3)."""
    q = curse.ridge_problem()
    c = curse.curves(q, 400)
    for m in ("gd-1/L", "gd-2/(L+l)", "heavy-ball", "chebyshev", "cg"):
        assert np.all(np.diff(c.error[m]) <= 1e-12 * c.start), m
    assert curse.peak(c.error["fista"])[0] == 0  # FISTA ripples, never above its start


def test_curves_at_chosen_iterations_and_json():
    q = curse.spd_problem(kappa=20.0, n=10)
    full = curse.curves(q, 30, methods=("chebyshev", "cg"))
    some = curse.curves(q, [30, 0, 7, 7], methods=("chebyshev", "cg"))
    np.testing.assert_array_equal(some.t, [0, 7, 30])
    np.testing.assert_allclose(some.error["cg"], full.error["cg"][[0, 7, 30]], rtol=1e-12)
    np.testing.assert_allclose(some.bound["chebyshev"], full.bound["chebyshev"][[0, 7, 30]])
    assert "cg" not in some.bound
    rec = some.to_json()
    assert rec["t"] == [0, 7, 30] and isinstance(rec["error"]["cg"][0], float)


def test_float64_when_x64_is_disabled():
    q = curse.spd_problem(kappa=20.0, n=10)
    ref = curse.curves(q, 40, methods=("gd-2/(L+l)", "cg"))
    with jax.enable_x64(False):
        c = curse.curves(q, 40, methods=("gd-2/(L+l)", "cg"))
        modes = curse.mode_errors(q, [glrjax.Unrolled()], (5,))
        assert jnp.ones(1).dtype == jnp.float32  # the caller's setting is left alone
    for m in ref.error:
        assert c.error[m].dtype == np.float64
        np.testing.assert_allclose(c.error[m], ref.error[m], rtol=1e-12)
    np.testing.assert_allclose(modes[glrjax.Unrolled()], ref.error["gd-2/(L+l)"][5] / ref.start)


# --- gradient modes ----------------------------------------------------------------------


def test_mode_errors_on_gradient_descent():
    q = curse.spd_problem(kappa=20.0, n=12)
    ks = (8,)
    modes = [
        glrjax.Unrolled(),
        glrjax.Checkpointed(every=3),
        glrjax.Truncated(last=8),
        glrjax.Truncated(last=2),
        glrjax.Implicit(tol=1e-13, maxiter=500),
    ]
    out = curse.mode_errors(q, modes, ks, solver="gd-2/(L+l)")
    dx, _ = numpy_exact(q)
    scale = np.linalg.norm(dx)
    unrolled = curse.errors(q, "gd-2/(L+l)", 8)[[8]] / scale
    for mode in modes[:3]:  # Truncated(last >= K) is exactly Unrolled
        np.testing.assert_allclose(out[mode], unrolled, rtol=1e-9, err_msg=repr(mode))
    assert np.all(np.abs(out[modes[3]] - unrolled) > 1e-3)  # truncation is biased
    # Implicit: ∂x = −H⁻¹(∂H x_K − ∂b) at the K-th iterate x_K (textbook GD loop).
    xs = numpy_runs(q, 8)["gd-2/(L+l)"]
    h = q.hess + q.theta * q.dhess
    ref = [np.linalg.norm(np.linalg.solve(h, q.dlin - q.dhess @ xs[k]) - dx) / scale for k in ks]
    np.testing.assert_allclose(out[modes[4]], ref, rtol=1e-8)


def test_mode_errors_on_cg():
    q = curse.ridge_problem(30, 12, 0.2, prior=True)
    out = curse.mode_errors(q, [glrjax.Unrolled()], (2, 6), solver="cg")
    dx, _ = numpy_exact(q)
    ref = curse.errors(q, "cg", 6)[[2, 6]] / np.linalg.norm(dx)
    np.testing.assert_allclose(out[glrjax.Unrolled()], ref, rtol=1e-8)


# --- validation -----------------------------------------------------------------------


def test_invalid_arguments_raise_helpful_errors():
    q = curse.spd_problem(kappa=10.0, n=5)
    with pytest.raises(ValueError, match="method='newton'"):
        curse.curves(q, 10, methods=("newton",))
    with pytest.raises(ValueError, match="no fixed-step bound"):
        curse.bound(q, "cg", 10)
    with pytest.raises(ValueError, match="kappa"):
        curse.spd_problem(kappa=1.0)
    with pytest.raises(ValueError, match="solver"):
        curse.mode_errors(q, solver="adam")
    with pytest.raises(ValueError, match="ts="):
        curse.curves(q, [-1, 3])
    with pytest.raises(TypeError, match="gradient"):
        curse.mode_errors(q, [glrjax.Unrolled], (2,))
