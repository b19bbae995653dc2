"""``jaxcollapse report DIR``: print (and plot) a finished run directory.

Two layouts exist. The Monte Carlo experiments (gaussian, kde, gmm, categorical,
regression, decompose) write ``summary.json`` (``config``, ``seconds``, ``table``:
one row a reported generation, Monte Carlo columns ``X_mean``/``X_se``/``X_median``
beside ``theory_X``) and ``arrays.npz`` (``(chain, generation)`` arrays). The
learned-generator experiments (lm, vae) write ``results.json`` (``protocol``,
``arms``, ``seeds``, ``records``: seed -> arm -> one dict a generation).

Collapsed chains. Metrics that are infinite for a collapsed (degenerate) model,
``log det`` ratios and Gaussian KL, are clamped at the float floor inside the
simulation (``log`` of the smallest normal float: -87.34 a dimension in float32), so
that nothing turns NaN. A mean over chains that includes such a floor is not an
estimate of anything: wherever a generation has degenerate chains (the
``degenerate`` column of a summary, or the ``degenerate`` array of
``arrays.npz``), tables print ``collapsed(N%)`` instead of that mean, and figures
leave the degenerate chains' values out and say so in the panel title.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

TABLE_WIDTH = 100
_PREFIXES = ("metric_", "distance_")
# quantities clamped at a float floor where a chain is degenerate (see module doc)
CLAMPED = ("logdet", "logdet_ratio", "kl")
_DEGENERATE_KEYS = ("degenerate", "degenerate_mean")


def _is_clamped(key: str) -> bool:
    base = _base(key)
    for suffix in ("_mean", "_median", "_se"):
        base = base.removesuffix(suffix)
    return not key.startswith("theory_") and base in CLAMPED


def _degenerate_fraction(row: dict) -> float:
    for k in _DEGENERATE_KEYS:
        v = row.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v):
            return float(v)
    return 0.0


def collapsed_cell(value: Any, fraction: float) -> str:
    """The table cell of a clamped quantity (log det ratio, KL) at a generation where
    ``fraction`` of the chains are degenerate: ``collapsed(N%)`` rather than a mean
    that mixes in float floors; the formatted value where none are.

    Example:
        >>> collapsed_cell(-87.34, 0.25), collapsed_cell(-1.5, 0.0)
        ('collapsed(25%)', '-1.5')
    """
    if fraction > 0:
        pct = 100.0 * fraction
        return f"collapsed({pct:.0f}%)" if pct >= 1 else f"collapsed({pct:.1g}%)"
    return _fmt(value)


class ReportError(ValueError):
    """A run directory that cannot be reported (one line, exit code 2)."""


def load_run(path: str | Path) -> tuple[str, dict]:
    """``(kind, data)`` of the run in ``path``: kind ``"summary"`` or ``"learned"``.

    Example:
        >>> import tempfile
        >>> load_run(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        jaxcollapse._report.ReportError: ... holds no summary.json or results.json ...
    """
    d = Path(path)
    if not d.is_dir():
        raise ReportError(f"DIR {str(d)!r} is not a directory")
    for name, kind in (("summary.json", "summary"), ("results.json", "learned")):
        f = d / name
        if f.is_file():
            try:
                data = json.loads(f.read_text())
            except (OSError, ValueError) as e:
                raise ReportError(f"cannot read {f}: {str(e).splitlines()[0]}") from None
            keys = ("config", "table") if kind == "summary" else ("records",)
            if not isinstance(data, dict) or any(k not in data for k in keys):
                raise ReportError(f"{f} is not a jaxcollapse result (needs keys {keys})")
            return kind, data
    prog = d / "progress.json"
    if prog.is_file():
        done = json.loads(prog.read_text()).get("generations_done", "?")
        raise ReportError(f"the run in {str(d)!r} is unfinished ({done} generations done); "
                          f"finish it before reporting")
    raise ReportError(f"{str(d)!r} holds no summary.json or results.json "
                      f"(written by 'jaxcollapse run NAME --out DIR')")


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool | str):
        return str(x)
    if isinstance(x, int):
        return f"{x:d}"
    return f"{x:.4g}"


def _columns(rows: list[dict]) -> list[tuple[str, str, str | None]]:
    """``(label, key, se_key)`` per column: each Monte Carlo column followed by the
    theory column of the same quantity; theory columns without a partner go last."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys and k != "generation"]
    theory = [k for k in keys if k.startswith("theory_")]
    cols, used = [], set()
    for k in keys:
        if k.startswith("theory_") or k.endswith("_se"):
            continue
        base = k.removesuffix("_mean")
        se = base + "_se"
        cols.append((base if k.endswith("_mean") else k, k, se if se in keys else None))
        for t in theory:
            if t not in used and t[len("theory_"):] in (k, base):
                cols.append(("theory", t, None))
                used.add(t)
    cols += [(t, t, None) for t in theory if t not in used]
    return cols


def format_table(rows: list[dict], width: int = TABLE_WIDTH) -> str:
    """The rows of a ``summary.json`` table: Monte Carlo ``mean±se`` beside theory,
    split into blocks of at most ``width`` characters (each repeating ``gen``). A
    clamped quantity (``CLAMPED``) at a generation with degenerate chains prints as
    :func:`collapsed_cell`, never as the mean of float floors.

    Example:
        >>> rows = [dict(generation=0, w2sq_mean=0.0, w2sq_se=0.0, theory_w2sq_mean=0.0),
        ...         dict(generation=10, w2sq_mean=0.21, w2sq_se=0.01, theory_w2sq_mean=0.2)]
        >>> print(format_table(rows))
         gen        w2sq  theory
           0       0±0       0
          10  0.21±0.01     0.2
        >>> rows = [dict(generation=500, logdet_mean=-87.34, theory_logdet_mean=-410.9,
        ...              degenerate=1.0)]
        >>> print(format_table(rows))
         gen          logdet  theory  degenerate
         500  collapsed(100%)  -410.9           1
    """
    cols = _columns(rows)
    cells = []
    for label, key, se in cols:
        col = []
        for r in rows:
            v = r.get(key)
            frac = _degenerate_fraction(r) if _is_clamped(key) else 0.0
            if frac > 0:
                col.append(collapsed_cell(v, frac))
                continue
            col.append(_fmt(v) + ("" if se is None or r.get(se) is None or v is None
                                  else f"±{r[se]:.2g}"))
        w = max(len(label), *(len(c) for c in col)) + 2
        cells.append((label, col, w))
    gen = [str(r.get("generation", i)) for i, r in enumerate(rows)]
    gw = max(4, *(len(g) for g in gen))
    blocks, cur, cur_w = [], [], gw
    for c in cells:
        if cur and cur_w + c[2] > width:
            blocks.append(cur)
            cur, cur_w = [], gw
        cur.append(c)
        cur_w += c[2]
    blocks.append(cur)
    out = []
    for b in blocks:
        out.append(f"{'gen':>{gw}}" + "".join(f"{lab:>{w}}" for lab, _, w in b))
        for i, g in enumerate(gen):
            out.append(f"{g:>{gw}}" + "".join(f"{col[i]:>{w}}" for _, col, w in b))
        out.append("")
    return "\n".join(out).rstrip("\n")


def _arrays(d: Path) -> dict[str, np.ndarray]:
    """The ``(chain, generation)`` arrays of ``arrays.npz`` (others are skipped)."""
    f = d / "arrays.npz"
    if not f.is_file():
        return {}
    with np.load(f) as z:
        return {k: np.asarray(z[k], np.float64) for k in z.files if z[k].ndim == 2}


def _base(name: str) -> str:
    for p in _PREFIXES:
        name = name.removeprefix(p)
    return name


def rows_at(d: Path, table: list[dict], generations: list[int]) -> list[dict]:
    """Monte Carlo mean and standard error of every ``(chain, generation)`` array of
    ``d/arrays.npz`` at ``generations``, with the stored theory of those
    generations (where the summary table has that generation)."""
    arrays = _arrays(d)
    if not arrays:
        raise ReportError(f"{d / 'arrays.npz'} is missing or holds no (chain, generation) "
                          f"arrays; --at needs it")
    n_gen = min(a.shape[1] for a in arrays.values())
    bad = [g for g in generations if not 0 <= g < n_gen]
    if bad:
        raise ReportError(f"--at generations must lie in [0, {n_gen - 1}]; got {bad}")
    stored = {r.get("generation"): r for r in table}
    rows = []
    for g in sorted(set(generations)):
        row: dict[str, Any] = dict(generation=g)
        for k, a in arrays.items():
            v = a[:, g]
            row[f"{_base(k)}_mean"] = float(v.mean())
            row[f"{_base(k)}_se"] = float(v.std() / np.sqrt(len(v)))
        row.update({k: v for k, v in stored.get(g, {}).items() if k.startswith("theory_")})
        rows.append(row)
    return rows


def _settings(config: dict) -> str:
    items = [f"{k}={_fmt(v) if not isinstance(v, dict | list) else v}"
             for k, v in config.items() if k != "experiment"]
    lines, cur = [], "settings:"
    for it in items:
        if len(cur) + 1 + len(it) > TABLE_WIDTH:
            lines.append(cur)
            cur = "   "
        cur += " " + it
    return "\n".join(lines + [cur])


def report_summary(d: Path, data: dict, at: list[int] | None = None) -> str:
    """The text report of a Monte Carlo run (``summary.json`` + ``arrays.npz``)."""
    config = data["config"]
    secs = data.get("seconds")
    lines = [f"{config.get('experiment', '?')} run in {d}"
             + (f" ({secs:.2f} s)" if isinstance(secs, int | float) else ""),
             _settings(config), ""]
    rows = data["table"] if at is None else rows_at(d, data["table"], at)
    lines.append("Monte Carlo (mean±se over chains) beside theory, per generation:"
                 if at is not None else "per generation (Monte Carlo beside theory):")
    lines.append(format_table(rows))
    for k, v in data.items():
        if k in ("config", "seconds", "table", "files"):
            continue
        text = " ".join(f"{a}={_fmt(b)}" for a, b in v.items()) if isinstance(v, dict) \
            else _fmt(v)
        lines.append(f"{k}: {text}")
    return "\n".join(lines)


_LEARNED_METRICS = {
    "lm": ("test_ppl", "test_acc", "valid_ppl", "gen0_ppl_median", "train_loss"),
    "vae": ("test_elbo", "test_iwae", "latent_spread", "class_entropy", "train_loss",
            "precision", "recall", "density", "coverage"),
}


def _learned_kind(data: dict) -> str:
    return "lm" if "corpus" in data else "vae"


def learned_table(data: dict) -> tuple[list[str], dict[str, dict[str, np.ndarray]]]:
    """(metric names, metric -> arm -> ``(seed, generation)`` array) of ``results.json``;
    generations a seed has not reached are NaN."""
    records = data["records"]
    names = [m for m in _LEARNED_METRICS[_learned_kind(data)]
             if any(m in rec for runs in records.values() for recs in runs.values()
                    for rec in recs)]
    arms = list(next(iter(records.values())))
    n_gen = max(len(recs) for runs in records.values() for recs in runs.values())
    out: dict[str, dict[str, np.ndarray]] = {}
    for m in names:
        out[m] = {}
        for a in arms:
            v = np.full((len(records), n_gen), np.nan)
            for i, runs in enumerate(records.values()):
                for g, rec in enumerate(runs.get(a, [])):
                    if rec.get(m) is not None:
                        v[i, g] = rec[m]
            out[m][a] = v
    return names, out


def report_learned(d: Path, data: dict) -> str:
    """The text report of an lm/vae run (``results.json``)."""
    kind = _learned_kind(data)
    proto = dict(data.get("protocol", {}))
    model = proto.pop("model", {})
    seeds = data.get("seeds", list(data["records"]))
    lines = [f"{kind} run in {d}: {data.get('corpus', data.get('data', '?'))}",
             _settings(dict(seeds=seeds, **proto)), _settings(model).replace(
                 "settings:", "model:   ", 1), ""]
    names, tab = learned_table(data)
    arms = list(next(iter(tab.values()))) if tab else []
    n_gen = next(iter(next(iter(tab.values())).values())).shape[1] if tab else 0
    lines.append(f"per generation and arm (mean over {len(seeds)} seed(s); ± the spread "
                 f"between seeds where there are several):")
    rows = []
    for g in range(n_gen):
        for a in arms:
            row: dict[str, Any] = dict(generation=g, arm=a)
            for m in names:
                v = tab[m][a][:, g]
                v = v[np.isfinite(v)]
                row[f"{m}_mean"] = float(v.mean()) if len(v) else None
                if len(v) > 1:
                    row[f"{m}_se"] = float(v.std(ddof=1))
            rows.append(row)
    lines.append(format_table(rows))
    return "\n".join(lines)


def _figure(n_panels: int):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ReportError("--plot needs matplotlib: pip install 'jaxcollapse[figures]'"
                          ) from None
    ncols = min(3, n_panels)
    nrows = -(-n_panels // ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes


def _theory_for(name: str, theory_keys: list[str]) -> list[str]:
    base = _base(name)
    out = []
    for t in theory_keys:
        tb = t.removeprefix("theory_").removesuffix("_mean").removesuffix("_median")
        if base == tb or base.endswith("_" + tb) or base.startswith(tb + "_") or \
                tb.startswith(base + "_"):
            out.append(t)
    return out


def plot_summary(d: Path, data: dict, path: str) -> list[str]:
    """Plots every ``(chain, generation)`` array (mean, median, 5-95% band) with the
    stored theory as markers; returns the names of the panels."""
    arrays = _arrays(d)
    if not arrays:
        raise ReportError(f"{d / 'arrays.npz'} is missing or holds no (chain, generation) "
                          f"arrays to plot")
    table = data["table"]
    theory_keys = sorted({k for r in table for k in r if k.startswith("theory_")})
    degenerate = arrays.get("degenerate")
    fig, axes = _figure(len(arrays))
    for ax, (name, a) in zip(axes, arrays.items(), strict=False):
        omitted = ""
        if _is_clamped(name) and degenerate is not None and degenerate.shape == a.shape \
                and degenerate.any():
            # the floors of collapsed chains are not values: leave them out, say so
            a = np.where(degenerate > 0, np.nan, a)
            omitted = f" ({100 * degenerate.mean():.0f}% collapsed, left out)"
        g = np.arange(a.shape[1])
        lo, hi = np.nanquantile(a, [0.05, 0.95], axis=0)
        ax.fill_between(g, lo, hi, alpha=0.2, lw=0, label="5-95% of chains")
        ax.plot(g, np.nanmean(a, 0), lw=1.5, label="mean")
        ax.plot(g, np.nanmedian(a, 0), lw=1, ls=":", label="median")
        ths = _theory_for(name, theory_keys) or (theory_keys if len(arrays) == 1 else [])
        for t in ths:
            pts = [(r["generation"], r[t]) for r in table if r.get(t) is not None]
            if pts:
                x, y = zip(*pts, strict=True)
                ax.plot(x, y, "k--o", ms=3, lw=0.8, label=t)
        ax.set_title(_base(name) + omitted, fontsize=9 if omitted else None)
        ax.set_xlabel("generation")
        ax.legend(fontsize=7)
    cfg = data["config"]
    fig.suptitle(f"{cfg.get('experiment', '')}: {cfg.get('chains', '?')} chains, "
                 f"regime {cfg.get('regime', '?')}")
    fig.savefig(path)
    return list(arrays)


def plot_learned(data: dict, path: str) -> list[str]:
    """Plots each metric of an lm/vae run against generation, one line an arm (mean
    over seeds, band from the smallest to the largest seed)."""
    names, tab = learned_table(data)
    fig, axes = _figure(len(names))
    for ax, m in zip(axes, names, strict=False):
        for a, v in tab[m].items():
            ok = np.isfinite(v).any(0)  # generations with a value (gen0_ppl_* start at 1)
            g, v = np.arange(v.shape[1])[ok], v[:, ok]
            ax.plot(g, np.nanmean(v, 0), "-o", ms=3, label=a)
            if v.shape[0] > 1:
                ax.fill_between(g, np.nanmin(v, 0), np.nanmax(v, 0), alpha=0.2, lw=0)
        ax.set_title(m)
        ax.set_xlabel("generation")
        ax.legend(fontsize=7)
    fig.suptitle(f"{_learned_kind(data)}: {data.get('corpus', data.get('data', ''))}")
    fig.savefig(path)
    return names


def export(directory: str | Path, fmt: str | None, output: str | None = None) -> Path:
    """``report DIR --format csv|netcdf|zarr [--output FILE]``: writes the run as a long
    table or labelled arrays (:func:`jaxcollapse.export.write_run`); returns the path."""
    from jaxcollapse.export import write_run

    if fmt is None:
        raise ReportError("--output needs --format csv, netcdf or zarr")
    return write_run(directory, fmt, output)
