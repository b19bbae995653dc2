"""Results as labelled arrays: :mod:`xarray` datasets and long :mod:`pandas` tables.

Every result jaxcollapse produces can be handed to the scientific-Python tools that
analyse sweeps: :func:`to_xarray` turns it into an ``xarray.Dataset`` with named
dimensions (``chain``, ``generation``, a grid axis such as ``alpha``, ``arm`` and
``seed`` for the learned generators), the configuration in its attributes and
theory curves beside the Monte Carlo metrics; :func:`to_dataframe` gives the long
table (one row a value) that seaborn and pandas' ``groupby`` expect.

It accepts a :class:`~jaxcollapse.SimulationResult` (from ``simulate`` or
``simulate_grid``), a :class:`~jaxcollapse.StoredResult`, the records of
:func:`~jaxcollapse.learned.run_lm` / :func:`~jaxcollapse.learned.run_vae`, and a
run folder written by ``jaxcollapse run NAME --out DIR`` (see :func:`open_run`).

xarray and pandas are an optional extra: ``pip install 'jaxcollapse[analysis]'``.
"""

from __future__ import annotations

import json
import numbers
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["gaussian_theory", "open_run", "to_dataframe", "to_xarray", "write_run"]

EXTRA_HINT = "pip install 'jaxcollapse[analysis]'"
FORMATS = ("csv", "netcdf", "zarr")
_SUFFIX = {"csv": ".csv", "netcdf": ".nc", "zarr": ".zarr"}


def _need(module: str, what: str):
    """Imports ``module`` of the analysis extra, or names the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{what} ({e}); install it with: {EXTRA_HINT}") from None


def _xr():
    _need("pandas", "labelled results need xarray and pandas")
    return _need("xarray", "labelled results need xarray and pandas")


def _pd():
    return _need("pandas", "tables of results need pandas")


def _attr(v: Any) -> Any:
    """A value every backend (netCDF, zarr) stores as an attribute."""
    if isinstance(v, bool | np.bool_):
        return int(v)
    if isinstance(v, str | numbers.Number):
        return v
    return json.dumps(v, default=str)


def _attrs(config: Mapping[str, Any] | None) -> dict[str, Any]:
    return {str(k): _attr(v) for k, v in (config or {}).items()}


# ---------------------------------------------------------------------------- theory


def gaussian_theory(n_samples: Any, *, sigma0_sq: float = 1.0, ddof: int = 1
                    ) -> dict[str, np.ndarray]:
    """The expected metrics of the one-dimensional Gaussian under ``replace``.

    Curves over generations ``0..n`` for the schedule of training-set sizes
    ``n_samples`` (a result's ``n_samples``: generation 0 first, whose entry is
    ignored), ready for ``to_xarray(result, theory=...)``: ``var_ratio``
    (E s_n^2 / s_0^2), ``mean_shift`` (E (mu_n - mu_0)^2) and ``w2sq``
    (E W2^2 to the start). Only the ``replace`` regime follows these curves.

    Args:
        n_samples: ``(generation,)`` or ``(grid, generation)`` sizes, entry 0 ignored.
        sigma0_sq: the variance of generation 0.
        ddof: the family's ``ddof`` (1 unbiased, 0 maximum likelihood).

    Returns:
        dict name -> float64 array shaped like ``n_samples``.

    References:
        Shumailov et al. (2024), Nature 631, supplementary information.

    Example:
        >>> th = gaussian_theory([0, 100, 100])
        >>> [round(float(x), 5) for x in th["w2sq"]]
        [0.0, 0.01504, 0.03008]
    """
    from jaxcollapse.theory import gaussian as tg

    m = np.asarray(n_samples, np.float64)
    if m.ndim not in (1, 2) or m.shape[-1] < 1:
        raise ValueError(f"n_samples must be a (generation,) or (grid, generation) array; "
                         f"got shape {m.shape}")
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1; got {ddof!r}")
    if not (np.isfinite(sigma0_sq) and sigma0_sq > 0):
        raise ValueError(f"sigma0_sq must be a positive finite variance; got {sigma0_sq!r}")
    sched = m[..., 1:]
    if sched.size and sched.min() <= ddof:
        raise ValueError(f"n_samples after generation 0 must exceed ddof={ddof}; got "
                         f"{sched.min()}")
    return dict(
        var_ratio=np.asarray(tg.variance_mean_schedule(sched, 1.0, ddof), np.float64),
        mean_shift=np.asarray(tg.mean_shift_schedule(sched, sigma0_sq, ddof), np.float64),
        w2sq=np.asarray(tg.w2sq_mean_schedule(sched, sigma0_sq, ddof), np.float64))


# ------------------------------------------------------------------------ Monte Carlo


def _grid_coords(grid, n: int) -> tuple[str, np.ndarray]:
    if grid is None:
        return "grid", np.arange(n)
    if not isinstance(grid, Mapping) or len(grid) != 1:
        raise TypeError(f"grid must be a one-entry mapping such as {{'alpha': values}}; "
                        f"got {grid!r}")
    (name, values), = grid.items()
    values = np.asarray(values)
    if values.shape != (n,):
        raise ValueError(f"grid[{name!r}] must have shape ({n},), one value a grid point; "
                         f"got {values.shape}")
    return str(name), values


def _simulation_dataset(res, *, theory, grid, attrs, params):
    from jaxcollapse.store import flatten

    xr = _xr()
    deg = np.asarray(res.degenerate)
    lead = deg.ndim - 2
    if lead not in (0, 1):
        raise ValueError(f"a result's arrays must be (chain, generation) or (grid, chain, "
                         f"generation); got degenerate of shape {deg.shape}")
    dims = ("chain", "generation")
    coords: dict[str, Any] = dict(chain=np.arange(deg.shape[-2]),
                                  generation=np.arange(deg.shape[-1]))
    if lead:
        gname, gvals = _grid_coords(grid, deg.shape[0])
        dims = (gname,) + dims
        coords[gname] = gvals
    elif grid is not None:
        raise ValueError("grid= labels the leading axis of a simulate_grid result; this "
                         "result has none")
    data: dict[str, Any] = {}
    for k, v in res.metrics.items():
        data[k] = (dims, np.asarray(v))
    data["degenerate"] = (dims, deg)
    ns = np.asarray(res.n_samples)
    data["n_samples"] = (dims[:lead] + ("generation",), np.broadcast_to(
        ns, deg.shape[:lead] + deg.shape[-1:]) if ns.ndim == 1 and lead else ns)
    if params and res.params is not None:
        for k, v in flatten(res.params).items():
            v = np.asarray(v)
            extra = tuple(f"{k}_dim{i}" for i in range(v.ndim - len(dims)))
            data[f"param_{k}"] = (dims + extra, v)
    for k, v in (theory or {}).items():
        v = np.asarray(v, np.float64)
        tdims = dims[:lead] + ("generation",) if v.ndim == lead + 1 else ("generation",)
        if v.ndim != len(tdims) or v.shape[-1] != deg.shape[-1]:
            raise ValueError(f"theory[{k!r}] must be an array over generation "
                             f"({deg.shape[-1]},){' or (grid, generation)' if lead else ''}"
                             f"; got shape {v.shape}")
        data[f"theory_{k}"] = (tdims, v)
    return xr.Dataset(data, coords=coords, attrs=_attrs(attrs))


# ----------------------------------------------------------------- learned generators


def _flat_record(rec: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in rec.items():
        if isinstance(v, Mapping):
            out.update(_flat_record(v, f"{prefix}{k}_"))
        elif v is None or isinstance(v, numbers.Number | list | tuple | np.ndarray):
            out[prefix + k] = v
    return out


def _records_dataset(runs: Mapping[Any, Mapping[str, list[dict]]], attrs):
    """``seed -> arm -> records`` as a dataset with dims (seed, arm, generation)."""
    xr = _xr()
    seeds = list(runs)
    arms = list(dict.fromkeys(a for r in runs.values() for a in r))
    n_gen = max((len(recs) for r in runs.values() for recs in r.values()), default=0)
    flat = {(i, j): [_flat_record(rec) for rec in runs[s].get(a, [])]
            for i, s in enumerate(seeds) for j, a in enumerate(arms)}
    names = list(dict.fromkeys(k for recs in flat.values() for rec in recs for k in rec
                               if k != "generation"))
    data: dict[str, Any] = {}
    for name in names:
        vals = [rec.get(name) for recs in flat.values() for rec in recs]
        widths = {len(v) for v in vals if isinstance(v, list | tuple | np.ndarray)}
        width = max(widths, default=0)
        shape = (len(seeds), len(arms), n_gen) + ((width,) if widths else ())
        a = np.full(shape, np.nan)
        for (i, j), recs in flat.items():
            for g, rec in enumerate(recs):
                v = rec.get(name)
                if v is None:
                    continue
                g = int(rec.get("generation", g))
                if widths:
                    v = np.asarray(v, np.float64).ravel()
                    a[i, j, g, :v.size] = v
                else:
                    a[i, j, g] = float(v)
        dims = ("seed", "arm", "generation") + ((f"{name}_index",) if widths else ())
        data[name] = (dims, a)
    # results.json keys seeds by strings ("0"): numbers again where they are numbers
    numeric = all(isinstance(s, numbers.Integral) or str(s).isdigit() for s in seeds)
    coords = dict(seed=np.asarray([int(s) if numeric else str(s) for s in seeds]),
                  arm=np.asarray(arms, dtype=str), generation=np.arange(n_gen))
    return xr.Dataset(data, coords=coords, attrs=_attrs(attrs))


def _is_records(obj) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(v, list) for v in obj.values())


# ------------------------------------------------------------------------- dispatch


def to_xarray(result: Any, *, theory: Mapping[str, Any] | None = None,
              grid: Mapping[str, Any] | None = None, attrs: Mapping[str, Any] | None = None,
              params: bool = True):
    """A result as an ``xarray.Dataset`` with named dimensions.

    Monte Carlo results give one variable per metric with dims ``(chain,
    generation)`` (``simulate_grid``: ``(NAME, chain, generation)``, NAME from
    ``grid``), ``degenerate``, ``n_samples`` and ``param_FIELD`` (extra axes
    ``FIELD_dim0``...), plus ``theory_NAME`` over generation for each entry of
    ``theory``. Learned-generator records (an :class:`~jaxcollapse.learned.LMRun`,
    a :class:`~jaxcollapse.learned.VAERun`, ``arm -> records`` or ``seed -> arm ->
    records``) give one variable per numeric record field with dims ``(seed, arm,
    generation)`` (nested dicts flattened with ``_``, lists on an extra
    ``FIELD_index`` axis, missing values NaN).

    Args:
        result: a :class:`~jaxcollapse.SimulationResult`, a
            :class:`~jaxcollapse.StoredResult` (its configuration fingerprint
            becomes the attributes; only the generations written so far), records
            as above, or an ``xarray.Dataset`` (returned as is).
        theory: name -> array over generation (``(generation,)``, or ``(grid,
            generation)`` for a grid result), e.g. :func:`gaussian_theory`.
        grid: ``{"alpha": values}``: the name and values of the leading axis of a
            ``simulate_grid`` result (default: ``grid``, numbered).
        attrs: the configuration to store (JSON-encoded where not a number/string).
        params: include the fitted parameters (when the result holds them).

    Returns:
        ``xarray.Dataset``.

    Raises:
        ImportError: xarray or pandas missing (``pip install 'jaxcollapse[analysis]'``).

    References:
        Hoyer & Hamman (2017), xarray: N-D labeled arrays and datasets in Python.

    Example:
        >>> import jax, jaxcollapse as jc
        >>> fam = jc.Gaussian(dim=1, method="exact")
        >>> res = jc.simulate(jax.random.key(0), fam, fam.params(), n_generations=5,
        ...                   n_samples=50, n_chains=8)
        >>> ds = to_xarray(res, theory=gaussian_theory(res.n_samples), attrs=dict(M=50))
        >>> ds["w2sq"].dims, ds["theory_w2sq"].dims, ds.attrs["M"]
        (('chain', 'generation'), ('generation',), 50)
    """
    from jaxcollapse.simulation import SimulationResult
    from jaxcollapse.store import StoredResult

    xr = _xr()
    if isinstance(result, xr.Dataset):
        return result
    if isinstance(result, StoredResult):
        merged = dict(result.manifest["fingerprint"], generations_done=result.generations_done,
                      complete=result.complete)
        return _simulation_dataset(result.load(), theory=theory, grid=grid,
                                   attrs={**merged, **(attrs or {})}, params=params)
    if isinstance(result, SimulationResult):
        return _simulation_dataset(result, theory=theory, grid=grid, attrs=attrs,
                                   params=params)
    records = getattr(result, "records", result)
    if _is_records(records):
        records = {0: records}
    if isinstance(records, Mapping) and records and all(_is_records(v)
                                                         for v in records.values()):
        if theory is not None or grid is not None:
            raise ValueError("theory= and grid= apply to Monte Carlo results, not to "
                             "learned-generator records")
        return _records_dataset(records, attrs)
    raise TypeError(f"result must be a SimulationResult, a StoredResult, an LMRun/VAERun "
                    f"or their records; got {type(result).__name__}")


def to_dataframe(result: Any, **kwargs):
    """A result as a long ``pandas.DataFrame``: one row a value, ready for seaborn.

    Columns: the dimensions (``chain``, ``generation``, a grid axis; ``seed``,
    ``arm`` for learned records), ``metric``, ``value``, and, for Monte Carlo
    results, ``theory`` (the matching ``theory_METRIC`` curve, NaN where there is
    none) and ``n_samples``. Only the per-chain metrics appear (not parameters or
    flags); use :func:`to_xarray` for those.

    Args:
        result: anything :func:`to_xarray` accepts.
        **kwargs: passed to :func:`to_xarray` (``theory``, ``grid``, ``attrs``).

    Returns:
        ``pandas.DataFrame``.

    References:
        Wickham (2014), Tidy data, J. Stat. Softw. 59(10).

    Example:
        >>> import jax, jaxcollapse as jc
        >>> fam = jc.Gaussian(dim=1, method="exact")
        >>> res = jc.simulate(jax.random.key(0), fam, fam.params(), n_generations=4,
        ...                   n_samples=50, n_chains=3, metrics=["w2sq"])
        >>> df = to_dataframe(res, theory=gaussian_theory(res.n_samples))
        >>> list(df.columns), len(df)
        (['chain', 'generation', 'metric', 'value', 'n_samples', 'theory'], 15)
    """
    pd = _pd()
    ds = to_xarray(result, **{"params": False, **kwargs})
    learned = "arm" in ds.dims
    skip = ("degenerate", "n_samples")
    names = [v for v in ds.data_vars if not str(v).startswith(("theory_", "param_"))
             and v not in skip and ("chain" in ds[v].dims or learned)]
    frames = []
    for name in names:
        da = ds[name]
        df = da.to_dataframe(name="value").reset_index()
        df = df[[c for c in df.columns if c in da.dims or c == "value"]]
        if learned:
            df = df.dropna(subset=["value"])
        df.insert(len(da.dims), "metric", str(name))
        if not learned:
            if "n_samples" in ds:
                key = list(ds["n_samples"].dims)
                ns = ds["n_samples"].to_dataframe().reset_index()[key + ["n_samples"]]
                df = df.merge(ns, on=key, how="left")
            th = f"theory_{name}"
            if th in ds:
                tkey = list(ds[th].dims)
                tdf = ds[th].to_dataframe(name="theory").reset_index()[tkey + ["theory"]]
                df = df.merge(tdf, on=tkey, how="left")
            else:
                df["theory"] = np.nan
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["metric", "value"])
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------- run folders (report --format)


def _summary_dataset(d: Path, data: dict):
    xr = _xr()
    arrays = {}
    f = d / "arrays.npz"
    if f.is_file():
        with np.load(f) as z:
            arrays = {k: z[k] for k in z.files}
    two = [a.shape for a in arrays.values() if a.ndim == 2]
    n_chain, n_gen = two[0] if two else (0, 0)
    table = data.get("table", [])
    if not two:
        n_gen = max((int(r.get("generation", 0)) for r in table), default=-1) + 1
    vars_: dict[str, Any] = {}
    for k, a in arrays.items():
        name = k.removeprefix("metric_").removeprefix("distance_") if k.startswith(
            ("metric_", "distance_")) else k
        if a.ndim >= 2 and a.shape[:2] == (n_chain, n_gen):
            dims = ("chain", "generation") + tuple(f"{name}_dim{i}" for i in range(a.ndim - 2))
        elif a.ndim >= 1 and a.shape[0] == n_gen:
            dims = ("generation",) + tuple(f"{name}_dim{i}" for i in range(a.ndim - 1))
        else:
            dims = tuple(f"{name}_dim{i}" for i in range(a.ndim))
        vars_[name] = (dims, a)
    for key in dict.fromkeys(k for r in table for k in r if k.startswith("theory_")):
        v = np.full(n_gen, np.nan)
        for r in table:
            g = r.get("generation")
            if isinstance(g, int) and 0 <= g < n_gen and isinstance(r.get(key), int | float):
                v[g] = r[key]
        vars_[key.removesuffix("_mean")] = (("generation",), v)
    coords = dict(generation=np.arange(n_gen))
    if two:
        coords["chain"] = np.arange(n_chain)
    attrs = dict(data.get("config", {}))
    if isinstance(data.get("seconds"), int | float):
        attrs["seconds"] = data["seconds"]
    return xr.Dataset(vars_, coords=coords, attrs=_attrs(attrs))


def open_run(directory: str | Path):
    """The results in a run folder as an ``xarray.Dataset``.

    Reads what ``jaxcollapse run NAME --out DIR`` writes (``summary.json`` and
    ``arrays.npz``: the ``(chain, generation)`` arrays, the stored theory over
    generation, NaN where it was not tabulated, and the configuration as attributes;
    or ``results.json`` of lm/vae runs: dims ``(seed, arm, generation)``) and the
    store of ``simulate(..., checkpoint_dir=DIR)`` (``manifest.json``).

    Example:
        >>> import jax, tempfile, jaxcollapse as jc
        >>> fam = jc.Gaussian(dim=1, method="exact")
        >>> d = tempfile.mkdtemp()
        >>> _ = jc.simulate(jax.random.key(0), fam, fam.params(), n_generations=6,
        ...                 n_samples=20, n_chains=4, chunk_size=3, checkpoint_dir=d)
        >>> open_run(d)["var_ratio"].shape
        (4, 7)
    """
    from jaxcollapse import _report
    from jaxcollapse.store import MANIFEST, StoredResult

    d = Path(directory)
    if (d / MANIFEST).is_file() and not (d / "summary.json").is_file():
        return to_xarray(StoredResult(d))
    kind, data = _report.load_run(d)
    if kind == "summary":
        return _summary_dataset(d, data)
    attrs = {k: v for k, v in data.items() if k != "records"}
    return _records_dataset(data["records"], attrs)


def write_run(directory: str | Path, fmt: str, output: str | Path | None = None) -> Path:
    """Exports a run folder (see :func:`open_run`) as ``csv`` (the long table of
    :func:`to_dataframe`), ``netcdf`` or ``zarr``; returns the file written
    (default ``DIR/results.csv``, ``.nc`` or ``.zarr``).

    Example:
        >>> import jax, tempfile, jaxcollapse as jc
        >>> fam = jc.Gaussian(dim=1, method="exact")
        >>> d = tempfile.mkdtemp()
        >>> _ = jc.simulate(jax.random.key(0), fam, fam.params(), n_generations=4,
        ...                 n_samples=20, n_chains=2, chunk_size=2, checkpoint_dir=d)
        >>> write_run(d, "csv").name
        'results.csv'
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}; got {fmt!r}")
    ds = open_run(directory)
    out = Path(output) if output is not None else Path(directory) / f"results{_SUFFIX[fmt]}"
    if fmt == "csv":
        to_dataframe(ds).to_csv(out, index=False)
    elif fmt == "netcdf":
        ds.to_netcdf(out)
    else:
        with warnings.catch_warnings():  # zarr: consolidated metadata is not in the v3 spec
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata")
            ds.to_zarr(out, mode="w")
    return out
