"""jaxcollapse.export: results as xarray datasets and long pandas tables, and
``jaxcollapse report DIR --format``."""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse import cli
from jaxcollapse.export import gaussian_theory, open_run, to_dataframe, to_xarray, write_run
from jaxcollapse.theory import gaussian as tg

xr = pytest.importorskip("xarray")
pd = pytest.importorskip("pandas")

FAM = jc.Gaussian(dim=1, method="exact")
M, G, C = 20, 12, 2000


@pytest.fixture(scope="module")
def res():
    return jc.simulate(jax.random.key(0), FAM, FAM.params(), n_generations=G, n_samples=M,
                       n_chains=C)


@pytest.fixture(scope="module")
def grid_res():
    human = FAM.sample(jax.random.key(1), FAM.params(), M)
    alpha = np.array([0.0, 0.5])
    r = jc.simulate_grid(jax.random.key(2), FAM, FAM.params(), n_generations=4, n_samples=M,
                         n_chains=3, regime="mix", alpha=jnp.asarray(alpha), human_data=human)
    return r, alpha


def test_dataset_holds_the_result_with_named_dims(res):
    ds = to_xarray(res, attrs=dict(M=M, regime="replace", nested={"a": 1}, flag=True))
    for k, v in res.metrics.items():
        assert ds[k].dims == ("chain", "generation")
        np.testing.assert_array_equal(ds[k].values, np.asarray(v))
    np.testing.assert_array_equal(ds["degenerate"].values, np.asarray(res.degenerate))
    assert ds["n_samples"].values.tolist() == [0] + [M] * G
    assert ds["param_cov"].dims == ("chain", "generation", "cov_dim0", "cov_dim1")
    np.testing.assert_array_equal(ds["param_mean"].values, np.asarray(res.params.mean))
    # attributes every backend stores: numbers and strings, the rest as JSON
    assert ds.attrs == dict(M=M, regime="replace", nested='{"a": 1}', flag=1)
    assert "param_mean" not in to_xarray(res, params=False)


def test_gaussian_theory_is_the_closed_form():
    n = np.arange(6)
    for ddof in (0, 1):
        th = gaussian_theory([0] + [M] * 5, sigma0_sq=2.0, ddof=ddof)
        r = (M - ddof - 1 + 1.0) / (M - ddof) if ddof else (M - 1.0) / M  # E s^2 factor
        np.testing.assert_allclose(th["var_ratio"], r ** n, rtol=1e-6)
        np.testing.assert_allclose(th["w2sq"], tg.w2sq_mean(n, M, 2.0, ddof), rtol=1e-6)
        np.testing.assert_allclose(th["mean_shift"], tg.mean_shift(n, M, 2.0, ddof),
                                   rtol=1e-6)
    two = gaussian_theory(np.array([[0, 10, 10], [0, 50, 50]]))["w2sq"]
    assert two.shape == (2, 3)
    np.testing.assert_allclose(two[1], tg.w2sq_mean(np.arange(3), 50), rtol=1e-6)


def test_theory_sits_on_the_generation_of_the_monte_carlo(res):
    # A generation offset between theory and metrics would put the MC mean 1/M (= 5%)
    # per generation away, far beyond 5 standard errors (false-failure rate ~6e-7 per
    # comparison, 39 comparisons).
    ds = to_xarray(res, theory=gaussian_theory(res.n_samples, ddof=FAM.ddof))
    for name in ("var_ratio", "mean_shift", "w2sq"):
        mc, se = ds[name].mean("chain"), ds[name].std("chain") / np.sqrt(C)
        th = ds[f"theory_{name}"]
        assert th.dims == ("generation",)
        assert bool((abs(mc - th) <= 5 * se + 1e-6).all()), name


def test_grid_axis_is_named_and_selectable(grid_res):
    r, alpha = grid_res
    ds = to_xarray(r, grid={"alpha": alpha})
    assert ds["w2sq"].dims == ("alpha", "chain", "generation")
    assert ds["n_samples"].dims == ("alpha", "generation")
    np.testing.assert_array_equal(ds["w2sq"].sel(alpha=0.5).values,
                                  np.asarray(r.metrics["w2sq"])[1])
    assert to_xarray(r)["w2sq"].dims == ("grid", "chain", "generation")
    th = gaussian_theory(r.n_samples)
    assert to_xarray(r, theory=th, grid={"alpha": alpha})["theory_w2sq"].dims == \
        ("alpha", "generation")


def test_bad_grid_and_theory_are_refused(res, grid_res):
    r, alpha = grid_res
    with pytest.raises(ValueError, match=r"grid\['alpha'\] must have shape \(2,\)"):
        to_xarray(r, grid={"alpha": alpha[:1]})
    with pytest.raises(TypeError, match="grid must be a one-entry mapping"):
        to_xarray(r, grid=alpha)
    with pytest.raises(ValueError, match="grid= labels the leading axis"):
        to_xarray(res, grid={"alpha": alpha})
    with pytest.raises(ValueError, match=r"theory\['x'\] must be an array over generation"):
        to_xarray(res, theory={"x": np.zeros(G)})
    with pytest.raises(TypeError, match="result must be a SimulationResult"):
        to_xarray(np.zeros(3))
    with pytest.raises(ValueError, match="ddof must be 0 or 1"):
        gaussian_theory([0, 10], ddof=2)
    with pytest.raises(ValueError, match="sigma0_sq must be a positive"):
        gaussian_theory([0, 10], sigma0_sq=-1.0)


def test_dataframe_is_long_with_theory_beside(res, grid_res):
    th = gaussian_theory(res.n_samples)
    df = to_dataframe(res, theory=th)
    assert list(df.columns) == ["chain", "generation", "metric", "value", "n_samples",
                                "theory"]
    n_met = len(res.metrics)
    assert len(df) == n_met * C * (G + 1)
    w = df[df.metric == "w2sq"].set_index(["chain", "generation"])["value"]
    assert w.loc[(7, 5)] == pytest.approx(float(res.metrics["w2sq"][7, 5]))
    t = df[df.metric == "w2sq"].groupby("generation")["theory"].first()
    np.testing.assert_allclose(t.values, th["w2sq"])
    assert df[df.metric == "kl"]["theory"].isna().all()
    r, alpha = grid_res
    dg = to_dataframe(r, grid={"alpha": alpha})
    assert list(dg.columns[:3]) == ["alpha", "chain", "generation"]
    assert set(dg.alpha) == {0.0, 0.5}


def test_stored_result_carries_its_configuration(tmp_path):
    d = tmp_path / "store"
    s = jc.simulate(jax.random.key(0), FAM, FAM.params(), n_generations=6, n_samples=M,
                    n_chains=4, chunk_size=3, checkpoint_dir=d, keep=False)
    ds = to_xarray(s)
    np.testing.assert_array_equal(ds["w2sq"].values, s.metric("w2sq"))
    assert ds.attrs["n_generations"] == 6 and ds.attrs["complete"] == 1
    assert "Gaussian" in ds.attrs["family"]
    xr.testing.assert_identical(open_run(d), ds)


def _records():
    rec = lambda g, ppl, hist=None: dict(  # noqa: E731
        generation=g, test_ppl=ppl, gen0_ppl_median=None if g == 0 else ppl + 1,
        synthetic=None if g == 0 else dict(types=10 - g, zipf=1.0), class_hist=hist)
    return {"0": {"alpha=0": [rec(0, 100.0, [1, 2]), rec(1, 110.0, [3, 0])],
                  "alpha=0.1": [rec(0, 100.0), rec(1, 105.0)]},
            "1": {"alpha=0": [rec(0, 101.0)], "alpha=0.1": [rec(0, 99.0), rec(1, 104.0)]}}


def test_learned_records_have_seed_arm_generation_dims():
    ds = to_xarray(_records())
    assert ds["test_ppl"].dims == ("seed", "arm", "generation")
    assert ds.seed.values.tolist() == [0, 1]
    assert ds["test_ppl"].sel(seed=1, arm="alpha=0").values.tolist()[0] == 101.0
    assert np.isnan(ds["test_ppl"].sel(seed=1, arm="alpha=0", generation=1))  # not reached
    assert ds["synthetic_types"].sel(seed=0, arm="alpha=0").values.tolist()[1] == 9
    assert np.isnan(ds["gen0_ppl_median"].sel(generation=0)).all()
    assert ds["class_hist"].dims == ("seed", "arm", "generation", "class_hist_index")
    assert ds["class_hist"].sel(seed=0, arm="alpha=0", generation=1).values.tolist() == [3, 0]
    # an LMRun-like object, one seed
    from jaxcollapse.learned import LMRun

    run = LMRun(_records()["0"], {}, np.zeros(2))
    assert to_xarray(run)["test_ppl"].dims == ("seed", "arm", "generation")
    df = to_dataframe(_records())
    assert list(df.columns[:4]) == ["seed", "arm", "generation", "metric"]
    assert not df.value.isna().any()
    assert len(df[df.metric == "test_ppl"]) == 7
    with pytest.raises(ValueError, match="theory= and grid= apply to Monte Carlo"):
        to_xarray(_records(), theory={"x": [1.0]})


def test_missing_extra_is_named(monkeypatch, res):
    monkeypatch.setitem(sys.modules, "xarray", None)  # import xarray -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'jaxcollapse\[analysis\]'"):
        to_xarray(res)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install 'jaxcollapse\[analysis\]'"):
        to_dataframe(res)


# ------------------------------------------------------------ report DIR --format


@pytest.fixture(scope="module")
def gaussian_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "g"
    assert cli.main(["run", "gaussian", "--generations", "8", "--samples", "20",
                     "--chains", "16", "--seed", "1", "--out", str(out), "--no-progress",
                     "--report", "0", "4", "8"]) == 0
    return out


def test_report_exports_netcdf_zarr_and_csv(gaussian_run, tmp_path, capsys):
    with np.load(gaussian_run / "arrays.npz") as z:
        w2 = z["metric_w2sq"]
    table = json.loads((gaussian_run / "summary.json").read_text())["table"]
    nc = tmp_path / "g.nc"
    assert cli.main(["report", str(gaussian_run), "--format", "netcdf", "--output",
                     str(nc)]) == 0
    assert capsys.readouterr().out.strip() == f"export: {nc}"
    with xr.open_dataset(nc) as ds:
        np.testing.assert_array_equal(ds["w2sq"].values, w2)
        assert ds.attrs["experiment"] == "gaussian" and ds.attrs["chains"] == 16
        th = ds["theory_w2sq"].values
        for r in table:  # the stored theory on its generation, NaN between
            assert th[r["generation"]] == pytest.approx(r["theory_w2sq_mean"])
        assert np.isnan(th[1])
    assert cli.main(["report", str(gaussian_run), "--format", "zarr"]) == 0
    zs = xr.open_zarr(gaussian_run / "results.zarr")
    np.testing.assert_array_equal(zs["w2sq"].values, w2)
    assert write_run(gaussian_run, "csv", tmp_path / "g.csv") == tmp_path / "g.csv"
    df = pd.read_csv(tmp_path / "g.csv")
    w = df[df.metric == "w2sq"].set_index(["chain", "generation"])["value"]
    assert w.loc[(3, 8)] == pytest.approx(float(w2[3, 8]), rel=1e-6)


def test_report_export_of_learned_results(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(dict(
        protocol=dict(n_generations=1), corpus="x", seeds=[0, 1], records=_records())))
    assert cli.main(["report", str(tmp_path), "--format", "netcdf"]) == 0
    with xr.open_dataset(tmp_path / "results.nc") as ds:
        assert ds["test_ppl"].sel(seed=0, arm="alpha=0.1").values.tolist() == [100.0, 105.0]
        assert ds.attrs["corpus"] == "x"


def test_report_export_errors(gaussian_run, tmp_path, capsys):
    assert cli.main(["report", str(gaussian_run), "--output", "x.csv"]) == 2
    assert "--output needs --format" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path), "--format", "csv"]) == 2
    assert "holds no summary.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["report", str(gaussian_run), "--format", "parquet"])
    with pytest.raises(ValueError, match="format must be one of"):
        write_run(gaussian_run, "parquet")
