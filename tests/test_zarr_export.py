"""A run store exported to zarr v3 reads back through xarray, lazily and bitwise."""

import jax
import numpy as np
import pytest

import jaxcollapse as jc

zarr = pytest.importorskip("zarr")
xr = pytest.importorskip("xarray")
from jaxcollapse.zarr_export import export_zarr  # noqa: E402

FAM = jc.Gaussian(dim=2, method="exact")


def test_export_reads_back_bitwise_and_lazily(tmp_path):
    d = tmp_path / "store"
    res = jc.simulate(jax.random.key(3), FAM, FAM.params(), n_generations=10, n_samples=20,
                      n_chains=5, chunk_size=3, checkpoint_dir=d, metrics=["w2sq", "kl"])
    z = export_zarr(d, tmp_path / "run.zarr")
    ds = xr.open_zarr(z)
    assert ds["w2sq"].dims == ("chain", "generation")
    assert ds["param_cov"].shape == (5, 11, 2, 2)
    assert ds["w2sq"].encoding["chunks"] == (5, 3)  # chunked by the run's chunk_size
    assert not isinstance(ds["w2sq"].variable._data, np.ndarray)  # not read yet
    for k, v in res.metrics.items():
        np.testing.assert_array_equal(ds[k].values, np.asarray(v))
    np.testing.assert_array_equal(ds["param_mean"].values, np.asarray(res.params.mean))
    np.testing.assert_array_equal(ds["degenerate"].values, np.asarray(res.degenerate))
    np.testing.assert_array_equal(ds["n_samples"].values, np.asarray(res.n_samples))
    assert ds.attrs["complete"] and ds.attrs["fingerprint"]["n_chains"] == 5
    with pytest.raises(ValueError, match="exists; pass overwrite=True"):
        export_zarr(d, z)
    export_zarr(d, z, overwrite=True)
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match="holds no export of a run"):
        export_zarr(d, tmp_path / "other", overwrite=True)
    # a damaged source chunk is named, not exported
    (d / "chunk_000001.npz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"chunk_000001\.npz"):
        export_zarr(d, tmp_path / "bad.zarr")
