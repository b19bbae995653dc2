"""``run categorical --verify TPR,FPR`` and ``run gaussian --regime mix`` with theory
columns (issue 15): the runs beside their theory, and exit code 2 naming the flag.

Monte Carlo against theory: |mean - theory| <= 5 SE (+ a float floor), SE from the
chains; a false failure has probability about 6e-7 per comparison."""

import json

import jax
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse import cli
from jaxcollapse.experiments._steps import verify_exact
from jaxcollapse.theory import bias_mix as tbm
from jaxcollapse.theory import decoding as tdec
from jaxcollapse.theory import mixing
from jaxcollapse.theory import verification as tv

Z = 5.0


def _close(mean, se, theory, floor=1e-9):
    assert abs(mean - theory) <= Z * se + floor, (mean, se, theory)


def _run(argv, capsys):
    code = cli.main(["run", *argv, "--no-progress"])
    assert code == 0
    return capsys.readouterr().out


def _zipf(K, beta=1.1):
    p = np.arange(1, K + 1, dtype=float) ** -beta
    return p / p.sum()


def test_verify_exact_is_the_binomial_chain_of_theory_verification():
    # on the grid k/M, the law of M q_t is verifier_q_distribution's
    a, b, m, n = 0.8, 0.35, 12, 5
    q, c = verify_exact(5 / m, a, b, m, n)
    pmf = np.asarray(tv.verifier_q_distribution(5 / m, a, b, m, n))
    grid = np.arange(m + 1) / m
    np.testing.assert_allclose(q, pmf @ grid, rtol=1e-12)
    np.testing.assert_allclose(c, pmf @ (1 / (a * grid + b * (1 - grid))), rtol=1e-12)
    # off the grid, E q_1 = f(q_0) exactly
    q, _ = verify_exact(0.3133, a, b, m, 1)
    assert q[1] == pytest.approx(float(tv.verifier_kept_accuracy(0.3133, a, b)), rel=1e-12)


def test_categorical_verify_matches_the_exact_finite_m_law(tmp_path, capsys):
    K, M, C, G, a, b = 10, 40, 600, 4, 0.9, 0.3
    text = _run(["categorical", "--verify", f"{a},{b}", "--categories", str(K),
                 "--samples", str(M), "--chains", str(C), "--generations", str(G),
                 "--report", "0", "1", "2", "4", "--seed", "3", "--out", str(tmp_path)],
                capsys)
    assert "verify TPR=0.9 FPR=0.3" in text and "draws/kept" in text
    s = json.loads((tmp_path / "summary.json").read_text())
    cfg = s["config"]
    assert cfg["step_order"] == ["verify"] and cfg["verify_exact"] is True
    assert (cfg["verify_tpr"], cfg["verify_fpr"]) == (a, b)
    q0 = _zipf(K)[0]
    exact_q, exact_c = verify_exact(q0, a, b, M, G)
    for row in s["table"]:
        g = row["generation"]
        # M -> inf: the odds multiply by a/b each generation (closed form)
        assert row["theory_right_inf"] == pytest.approx(
            float(tv.verifier_iterate(q0, a, b, g)), rel=1e-9)
        assert row["theory_cost_inf"] == pytest.approx(
            float(tv.verifier_cost(row["theory_right_inf"], a, b)), rel=1e-9)
        assert row["theory_right_exact"] == pytest.approx(exact_q[g], rel=1e-12)
        _close(row["right_mean"], row["right_se"], row["theory_right_exact"])
        _close(row["cost_mean"], row["cost_se"], row["theory_cost_exact"])
    # at finite M the loop lags the deterministic map, and the test can see it
    last = s["table"][-1]
    assert last["theory_right_exact"] < last["theory_right_inf"]


@pytest.mark.slow  # a second compiled categorical run (~10 s of CPU)
def test_verify_after_decoding_and_without_the_exact_column(tmp_path, capsys):
    K, M, C, tau, a, b = 10, 40, 400, 1.5, 0.7, 0.4
    # verify given first: it still applies after the temperature
    text = _run(["categorical", "--verify", f"{a},{b}", "--temperature", str(tau),
                 "--categories", str(K), "--samples", str(M), "--chains", str(C),
                 "--generations", "1", "--report", "0", "1", "--out", str(tmp_path)], capsys)
    assert "temperature 1.5 -> verify TPR=0.7 FPR=0.4" in text
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["config"]["step_order"] == ["temperature", "verify"]
    assert s["config"]["verify_exact"] is False
    row = s["table"][1]
    assert "theory_right_exact" not in row
    # E[p_1] is the composed map exactly at every M
    q = np.asarray(tdec.temperature_map(_zipf(K), tau))[0]
    f = float(tv.verifier_kept_accuracy(q, a, b))
    assert row["theory_right_inf"] == pytest.approx(f, rel=1e-9)
    _close(row["right_mean"], row["right_se"], f)


def test_gaussian_mix_with_bias_prints_the_exact_moments(tmp_path, capsys):
    M, G, C, lam, alpha, n_h = 20, 5, 1500, 0.85, 0.2, 60
    text = _run(["gaussian", "--regime", "mix", "--alpha", str(alpha), "--source", "fixed",
                 "--sampling-bias", str(lam), "--samples", str(M), "--generations", str(G),
                 "--chains", str(C), "--human", str(n_h), "--report", "0", "1", "5",
                 "--seed", "4", "--out", str(tmp_path)], capsys)
    assert "E|mu-mu0|^2" in text and "theory.bias_mix" in text
    s = json.loads((tmp_path / "summary.json").read_text())
    # the run's human pool, drawn as the command draws it
    fam = jc.Gaussian(dim=1)
    human = np.asarray(fam.sample(jax.random.split(jax.random.key(4))[1], fam.params(), n_h),
                       float)
    kw = dict(source="fixed", human_mean=human.mean(0), human_cov=np.cov(human.T, ddof=0),
              mean0=0.0, cov0=1.0, n_pool=n_h)
    th = tbm.bias_mix_moments(G, M, alpha, lam, **kw)
    plain = mixing.mix_moments(G, M, alpha, **kw)
    for row in s["table"]:
        g = row["generation"]
        assert row["theory_var_mean"] == pytest.approx(th.cov[g, 0, 0], rel=1e-9)
        assert row["theory_mean_shift_mean"] == pytest.approx(th.mean_shift[g], rel=1e-9,
                                                              abs=1e-15)
        _close(row["var_mean"], row["var_se"], row["theory_var_mean"], floor=1e-5)
        _close(row["mean_shift_mean"], row["mean_shift_se"], row["theory_mean_shift_mean"],
               floor=1e-5)
    # the bias matters at this size: the unbiased theory is far from the run
    last = s["table"][-1]
    assert abs(last["var_mean"] - plain.cov[G, 0, 0]) > Z * last["var_se"]


@pytest.mark.parametrize("value, message", [
    ("1.2,0.1", "--verify TPR must be in [0, 1]"),
    ("0.5,-0.1", "--verify FPR must be in [0, 1]"),
    ("0,0", "--verify TPR and FPR must not both be 0"),
    ("0.5", "--verify must be TPR,FPR"),
    ("0.5,0.2,0.1", "--verify must be TPR,FPR"),
    ("a,b", "--verify must be TPR,FPR"),
    ("nan,0.2", "--verify must be TPR,FPR"),
])
def test_bad_verify_values_exit_2_naming_the_flag(tmp_path, capsys, value, message):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "categorical", "--generations", "2", "--chains", "2",
                  "--categories", "20", "--verify", value, "--out", str(tmp_path / "out"),
                  "--no-progress"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out" / "summary.json").exists()
