"""jaxcollapse.theory.regression: formulas against numpy and Monte Carlo."""

import numpy as np
import pytest

from jaxcollapse.theory import regression as th

Z = 5.0  # |mc - theory| <= Z * se: two-sided false-failure rate 6e-7 per comparison


def test_design_averaged_formulas():
    n = np.arange(5)
    np.testing.assert_allclose(th.excess_replace(n, 10, 100, noise=2.0), n * 4 * 10 / 89,
                               rtol=1e-12)
    h2 = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, 5) ** 2)])
    np.testing.assert_allclose(th.excess_accumulate(n, 10, 100), 10 / 89 * h2, rtol=1e-12)
    # Bounded by π²/6 times one generation's error.
    assert float(th.excess_accumulate(10**4, 10, 100)) < np.pi**2 / 6 * 10 / 89


def test_inverse_gram_trace_monte_carlo():
    # E tr((XᵀX)⁻¹) = d/(T - d - 1) for N(0, I) rows (inverse-Wishart mean).
    rng = np.random.default_rng(0)
    d, t, reps = 10, 100, 2000
    x = rng.normal(size=(reps, t, d))
    tr = np.array([float(th.inverse_gram_trace(xi)) for xi in x[:5]])
    np.testing.assert_allclose(tr, [np.trace(np.linalg.inv(xi.T @ xi)) for xi in x[:5]],
                               rtol=1e-8)
    all_tr = np.trace(np.linalg.inv(np.einsum("rti,rtj->rij", x, x)), axis1=1, axis2=2)
    assert abs(all_tr.mean() - d / (t - d - 1)) <= Z * all_tr.std() / np.sqrt(reps)


def test_fixed_design_formulas_and_ridge_limit():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 4))
    w0 = rng.normal(size=4)
    tr = np.trace(np.linalg.inv(x.T @ x))
    n = np.arange(6)
    np.testing.assert_allclose(th.excess_replace_fixed(n, x, noise=0.5), n * 0.25 * tr,
                               rtol=1e-10)
    h2 = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, 6) ** 2)])
    np.testing.assert_allclose(th.excess_accumulate_fixed(n, x), tr * h2, rtol=1e-10)
    np.testing.assert_allclose(th.excess_ridge_replace_fixed(n, x, w0, ridge=0.0),
                               n * tr, rtol=1e-10)
    # Ridge: a direct moment recursion in the original coordinates.
    lam, s2 = 5.0, 0.7**2
    g = x.T @ x
    a = np.linalg.solve(g + lam * np.eye(4), g)
    b = np.linalg.solve(g + lam * np.eye(4), x.T)
    mean, cov, ref = np.zeros(4), np.zeros((4, 4)), [0.0]
    for _ in range(5):
        mean = a @ mean + (a - np.eye(4)) @ w0
        cov = a @ cov @ a.T + s2 * b @ b.T
        ref.append(mean @ mean + np.trace(cov))
    np.testing.assert_allclose(th.excess_ridge_replace_fixed(n, x, w0, noise=0.7, ridge=lam),
                               ref, rtol=1e-10)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"n_design must be > dim \+ 1 = 11"):
        th.excess_replace(5, 10, 11)
    with pytest.raises(ValueError, match=r"n_design must be > dim \+ 1"):
        th.excess_accumulate(5, 10, 5)
    with pytest.raises(ValueError, match="ridge must be a finite number >= 0"):
        th.excess_ridge_replace_fixed(1, np.eye(3), np.ones(3), ridge=-1.0)
    with pytest.raises(ValueError, match="design must be finite"):
        th.excess_replace_fixed(1, np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match=r"w0 must have shape \(3,\)"):
        th.excess_ridge_replace_fixed(1, np.eye(3), np.ones(2))
    with pytest.raises(ValueError, match="n_generations must be integers >= 0"):
        th.excess_replace(-1, 2, 10)
    with pytest.raises(ValueError, match="noise must be a finite number > 0"):
        th.excess_replace(1, 2, 10, noise=0.0)
