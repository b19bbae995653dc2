"""jaxcollapse.theory.curation and .verification: against enumeration, scipy, closed forms."""

import itertools
import math

import numpy as np
import pytest
import scipy.integrate as si
import scipy.stats as st

from jaxcollapse.theory import curation as th
from jaxcollapse.theory import verification as tv


def _enumerate_kept(p, r, k):
    """Law of the kept draw by summing over all n^k candidate tuples."""
    out = np.zeros(len(p))
    for tup in itertools.product(range(len(p)), repeat=k):
        w = np.exp([r[i] for i in tup])
        w = w / w.sum()
        pr = np.prod([p[i] for i in tup])
        for j, i in enumerate(tup):
            out[i] += pr * w[j]
    return out


P3 = np.array([0.2, 0.5, 0.3])
R3 = np.array([0.3, -1.2, 2.0])


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_selection_factor_against_enumeration(k):
    np.testing.assert_allclose(P3 * np.asarray(th.selection_factor(P3, R3, k)),
                               _enumerate_kept(P3, R3, k), rtol=1e-6)


def test_selection_factor_wide_reward_range_and_zero_mass():
    # 59 nats of reward range and a category with p = 0 (its H still defined)
    p = np.array([0.3, 0.0, 0.45, 0.25])
    r = np.array([0.0, 5.0, -30.0, -59.0])
    for k in (2, 3):
        np.testing.assert_allclose(p * np.asarray(th.selection_factor(p, r, k)),
                                   _enumerate_kept(p, r, k), rtol=1e-6, atol=1e-15)


def test_pair_closed_form_and_limit():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    r = np.array([1.0, -0.5, 0.25, 2.0])
    np.testing.assert_allclose(th.selection_factor_pair(p, r), th.selection_factor(p, r, 2),
                               rtol=1e-6)
    w = np.exp(r)
    np.testing.assert_allclose(th.selection_factor_limit(p, r), w / np.sum(p * w), rtol=1e-12)
    assert th.selection_factor(p, r, math.inf).tolist() == th.selection_factor_limit(p, r).tolist()
    # H_K -> H_inf at rate 1/K: the error at K = 10^6 is a tenth of that at 10^5
    lim = np.asarray(th.selection_factor_limit(p, r))
    e5 = np.max(np.abs(np.asarray(th.selection_factor(p, r, 10**5)) - lim))
    e6 = np.max(np.abs(np.asarray(th.selection_factor(p, r, 10**6)) - lim))
    assert e6 < 1e-5 and 0.05 < e6 / e5 < 0.2


def test_curated_law_and_iteration():
    ref = np.array([0.25, 0.25, 0.5])
    k = 3
    kept = _enumerate_kept(P3, R3, k)
    np.testing.assert_allclose(th.curated_law(P3, R3, k), kept, rtol=1e-6)
    np.testing.assert_allclose(th.curated_law(P3, R3, k, 0.6, ref), 0.4 * ref + 0.6 * kept,
                               rtol=1e-6)
    path = th.curation_iterate(P3, R3, k, 12)
    np.testing.assert_allclose(path.probs[1], kept, rtol=1e-6)
    # Ferbach et al., Thm 2.1: the expected reward rises every generation; the law
    # concentrates on the maximiser (entropy falls to 0 here)
    assert np.all(np.diff(np.asarray(path.reward)) > 0)
    assert np.all(np.diff(np.asarray(path.entropy)) < 0)
    assert path.probs[-1, 2] > 0.999999 and path.entropy[-1] < 1e-5
    np.testing.assert_allclose(path.reward, np.asarray(path.probs) @ R3, rtol=1e-12)


def test_fixed_point():
    ref = np.array([0.25, 0.25, 0.5])
    for k in (2, 4):
        fp = np.asarray(th.curation_fixed_point(P3, R3, k, 0.7, ref))
        np.testing.assert_allclose(th.curated_law(fp, R3, k, 0.7, ref), fp, rtol=1e-10)
    fp = np.asarray(th.curation_fixed_point(P3, R3, math.inf, 0.7, ref))
    w = np.exp(R3)
    np.testing.assert_allclose(0.3 * ref + 0.7 * fp * w / np.sum(fp * w), fp, rtol=1e-10)
    # the iteration of the exact map reaches the closed form
    it = th.curation_iterate(P3, R3, math.inf, 400, 0.7, ref).probs[-1]
    np.testing.assert_allclose(it, fp, rtol=1e-10)
    with pytest.raises(ValueError, match="eta"):
        th.curation_fixed_point(P3, R3, 2, 1.0)


def test_tilted_gaussian():
    # 1-D by numerical integration of N(x; mu, s2) e^{-beta (x-c)^2}
    mu, s2, beta, c = 0.5, 2.0, 0.3, -1.0
    f = lambda x, j: x**j * st.norm.pdf(x, mu, np.sqrt(s2)) * np.exp(-beta * (x - c) ** 2)  # noqa: E731
    z, m1, m2 = (si.quad(f, -40, 40, args=(j,), epsabs=0, epsrel=1e-13)[0] for j in range(3))
    m, v = th.tilted_gaussian([mu], [[s2]], beta, [c])
    np.testing.assert_allclose([m[0], v[0, 0]], [m1 / z, m2 / z - (m1 / z) ** 2], rtol=1e-8)
    # d-D: the product form of the precision
    cov = np.array([[2.0, 0.6], [0.6, 1.0]])
    mean, cen = np.array([1.0, -2.0]), np.array([0.0, 0.5])
    m, v = th.tilted_gaussian(mean, cov, 0.7, cen)
    prec = np.linalg.inv(cov) + 1.4 * np.eye(2)
    np.testing.assert_allclose(v, np.linalg.inv(prec), rtol=1e-10)
    np.testing.assert_allclose(m, np.linalg.solve(prec, np.linalg.solve(cov, mean) + 1.4 * cen),
                               rtol=1e-10)


def test_curated_gaussian_moments():
    mu, s2, beta, c = 0.0, 1.0, 0.5, 2.0
    # K = 2 by a double integral: H(x) = 2 E_Y sigmoid(r(x) - r(Y))
    y, wy = np.polynomial.hermite_e.hermegauss(120)
    wy = wy / wy.sum()
    r = lambda x: -beta * (x - c) ** 2  # noqa: E731

    def kept(x, j):
        h = 2 * np.sum(wy / (1 + np.exp(r(mu + y) - r(x))))
        return x**j * st.norm.pdf(x, mu, 1.0) * h

    m1, m2 = (si.quad(kept, -12, 12, args=(j,), epsabs=0, epsrel=1e-12)[0] for j in (1, 2))
    m, v = th.curated_gaussian_moments(mu, s2, beta, c, 2, n_x=2001, n_nodes=2048)
    np.testing.assert_allclose([m, v], [m1, m2 - m1**2], rtol=1e-6)
    # large K tends to the tilt at rate 1/K (a priori bound 10/K on the difference)
    mt, vt = th.tilted_gaussian([mu], [[s2]], beta, [c])
    m, v = th.curated_gaussian_moments(mu, s2, beta, c, 10**5, n_x=2001, n_nodes=2048)
    assert abs(float(m) - float(mt[0])) < 1e-4 and abs(float(v) - float(vt[0, 0])) < 1e-4
    mi, vi = th.curated_gaussian_moments(mu, s2, beta, c, math.inf)
    assert (float(mi), float(vi)) == (float(mt[0]), float(vt[0, 0]))


def test_curation_bad_input():
    with pytest.raises(ValueError, match="k must be >= 2"):
        th.selection_factor(P3, R3, 1)
    with pytest.raises(TypeError, match="k must be"):
        th.selection_factor(P3, R3, 2.5)
    with pytest.raises(ValueError, match="eta"):
        th.curated_law(P3, R3, 2, eta=1.5)
    with pytest.raises(ValueError, match="reward must have shape"):
        th.curated_law(P3, R3[:2], 2)
    with pytest.raises(ValueError, match="reward must be finite"):
        th.curated_law(P3, [0.0, np.nan, 1.0], 2)
    with pytest.raises(ValueError, match="probs must sum"):
        th.curated_law([0.5, 0.6], [0.0, 1.0], 2)
    with pytest.raises(ValueError, match="beta"):
        th.tilted_gaussian([0.0], [[1.0]], -1.0, [0.0])


# -- verification ----------------------------------------------------------------------


@pytest.mark.parametrize("mu,v,c,a", [(0.0, 1.0, 0.0, 1.0), (0.3, 2.0, 1.0, 0.5),
                                      (3.0, 1.0, -2.0, 1.0), (-4.0, 0.5, 5.0, 2.0),
                                      (1.0, 4.0, 1.5, 30.0), (0.0, 1.0, 9.0, 1.0)])
def test_truncated_moments_against_scipy(mu, v, c, a):
    s = np.sqrt(v)
    d = st.truncnorm((c - a - mu) / s, (c + a - mu) / s, loc=mu, scale=s)
    t = tv.truncated_normal_moments(mu, v, c, a)
    np.testing.assert_allclose([t.mean, t.var], [d.mean(), d.var()], rtol=1e-6, atol=1e-14)
    lo, hi = (c - a - mu) / s, (c + a - mu) / s
    # the difference of the tail on the region's far side from the mean is accurate
    mass = st.norm.sf(lo) - st.norm.sf(hi) if c >= mu else st.norm.cdf(hi) - st.norm.cdf(lo)
    if mass > 1e-300:
        np.testing.assert_allclose(t.acceptance, mass, rtol=1e-6)
    assert not bool(t.empty)


def test_truncated_moments_far_tail_is_finite():
    # 1000 standard deviations away: the acceptance underflows, the moments do not
    t = tv.truncated_normal_moments(0.0, 1.0, 1000.0, 1.0)
    assert float(t.acceptance) == 0.0 and not bool(t.empty)
    assert abs(float(t.mean) - 999.001) < 1e-5
    # Var[X | X > α] = 1/α² - 6/α⁴ + O(α^-6) (the upper end 1001 is 2 nats of α away)
    alpha = 999.0
    assert abs(float(t.var) * alpha**2 - 1.0) < 1e-4
    # a region narrower than rounding at a huge offset: flagged, finite, uniform limit
    t = tv.truncated_normal_moments(0.0, 1.0, 1e8, 1e-9)
    assert np.isfinite(float(t.mean)) and np.isfinite(float(t.var))
    with pytest.raises(ValueError, match="half_width"):
        tv.truncated_normal_moments(0.0, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="var"):
        tv.truncated_normal_moments(0.0, -1.0, 0.0, 1.0)


def test_verified_gaussian_iterate():
    it = tv.verified_gaussian_iterate(3.0, 1.0, 0.0, 1.0, 20)
    v, m = np.asarray(it.var), np.asarray(it.mean)
    assert np.all(np.diff(v) < 0)  # truncation of a log-concave law lowers the variance
    assert np.all(np.abs(m[1:]) <= 1.0) and np.all(np.diff(np.asarray(it.acceptance)) > 0)
    one = tv.truncated_normal_moments(3.0, 1.0, 0.0, 1.0)
    np.testing.assert_allclose([m[1], v[1], it.acceptance[0]],
                               [one.mean, one.var, one.acceptance], rtol=1e-12)


def test_verifier_rates():
    q, a, b = 0.3, 0.8, 0.2
    acc = a * q + b * (1 - q)
    np.testing.assert_allclose(tv.verifier_acceptance(q, a, b), acc, rtol=1e-12)
    np.testing.assert_allclose(tv.verifier_kept_accuracy(q, a, b), a * q / acc, rtol=1e-12)
    np.testing.assert_allclose(tv.verifier_cost(q, a, b), 1 / acc, rtol=1e-12)
    assert float(tv.verifier_cost(0.0, 0.5, 0.0)) == math.inf
    assert float(tv.verifier_kept_accuracy(0.0, 0.5, 0.0)) == 0.0
    # the closed-form iteration equals the map applied t times
    qs = [q]
    for _ in range(6):
        qs.append(float(tv.verifier_kept_accuracy(qs[-1], a, b)))
    np.testing.assert_allclose(tv.verifier_iterate(q, a, b, np.arange(7)), qs, rtol=1e-12)
    t = tv.verifier_time_to_reach(q, 0.999, a, b)
    assert qs[min(t, 6)] >= 0.999 if t <= 6 else True
    it = np.asarray(tv.verifier_iterate(q, a, b, np.array([t - 1, t])))
    assert it[0] < 0.999 <= it[1]
    assert tv.verifier_fixed_points(a, b) == (1.0, 0.0)
    assert tv.verifier_time_to_reach(q, 0.9, 0.5, 0.5) == math.inf
    for bad in (dict(tpr=1.5, fpr=0.1), dict(tpr=0.5, fpr=-0.1)):
        with pytest.raises(ValueError, match="tpr|fpr"):
            tv.verifier_kept_accuracy(0.5, **bad)


def test_verifier_q_distribution():
    q0, a, b, m = 0.3, 0.8, 0.2, 12
    pmf = np.asarray(tv.verifier_q_distribution(q0, a, b, m, 3))
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0, rtol=1e-12)
    f = float(tv.verifier_kept_accuracy(round(q0 * m) / m, a, b))
    np.testing.assert_allclose(pmf[1], st.binom.pmf(np.arange(m + 1), m, f), rtol=1e-10)
    # E q_{t+1} = E f(q_t) exactly (for every M)
    fq = np.asarray(tv.verifier_kept_accuracy(np.arange(m + 1) / m, a, b))
    for t in range(3):
        np.testing.assert_allclose(pmf[t + 1] @ (np.arange(m + 1) / m), pmf[t] @ fq,
                                   rtol=1e-10)
    with pytest.raises(ValueError, match="m must be"):
        tv.verifier_q_distribution(q0, a, b, 0, 3)
