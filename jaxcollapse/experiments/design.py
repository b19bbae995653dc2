"""``jaxcollapse design PROBLEM``: the best loop design by differentiating through the
recursion, printed with its Monte Carlo standard error beside the closed form where
one exists; ``summary.json`` in ``--out`` (``jaxcollapse report DIR`` prints it).

Problems (a 1-D standard Gaussian loop unless said otherwise):

* ``weighted-fresh``: the weight ``w`` of ``n_real`` fresh real rows minimising the
  mean's E(mu_n - mu_0)^2 (closed form: ``w* = (sqrt(k^2 + 4k) - k)/2``, k = n_real/M);
* ``smallest-alpha``: the smallest relaxed human fraction with E|mu_n - mu_0|^2 <=
  ``--target`` (closed form: a root of the exact moments of the relaxed mix);
* ``bandwidth``: the fixed KDE bandwidth keeping the data variance stationary
  (closed form: ``h^2 = s_0^2/(M - 1)``);
* ``schedule``: the per-generation human fractions ``alpha_t`` with ``sum_t alpha_t M =
  --budget`` minimising E W2^2 averaged over generations 1..n, against the constant
  alpha of the same budget (no closed form: the gain with its standard error).

References:
    He, Xu, Cheng, arXiv 2502.18049 (2025); Shumailov et al., Nature 631 (2024).
    THEORY.md sections 6 and 11.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

PROBLEMS = ("weighted-fresh", "smallest-alpha", "bandwidth", "schedule")
DESCRIPTION = ("Find the best loop design by differentiating through the recursion: "
               "optimum +- standard error beside the closed form (issue 17).")
EXAMPLES = """examples:
  jaxcollapse design weighted-fresh                    # w* = 0.618 at n_real = M
  jaxcollapse design smallest-alpha --target 0.05 --out runs/alpha
  jaxcollapse design bandwidth --samples 50
  jaxcollapse design schedule --budget 40 --generations 10
  jaxcollapse report runs/alpha                        # the stored result
"""
GENERATIONS = {"weighted-fresh": 10, "smallest-alpha": 10, "bandwidth": 5, "schedule": 10}


def add_parser(sub) -> argparse.ArgumentParser:
    """Adds ``design`` to the command line's subcommands (``cli.build_parser``)."""
    p = sub.add_parser("design", help="optimise a loop design (gradients through the loop)",
                       description=DESCRIPTION, epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("problem", choices=PROBLEMS, help="the design problem")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default: %(default)s)")
    p.add_argument("--chains", type=int, default=512,
                   help="chains per evaluation (default: %(default)s)")
    p.add_argument("--generations", type=int, default=None,
                   help="generations n (default: 10; bandwidth 5)")
    p.add_argument("--samples", type=int, default=20,
                   help="training-set size M per generation (default: %(default)s)")
    p.add_argument("--steps", type=int, default=60,
                   help="optimiser steps (weighted-fresh, schedule; default: %(default)s)")
    p.add_argument("--n-real", type=int, default=None,
                   help="weighted-fresh: fresh real rows a generation (default: M)")
    p.add_argument("--human", type=int, default=None,
                   help="smallest-alpha, schedule: human pool size (default: 5 M)")
    p.add_argument("--target", type=float, default=0.1,
                   help="smallest-alpha: the largest E|mu_n - mu_0|^2 allowed "
                        "(default: %(default)s)")
    p.add_argument("--budget", type=int, default=None,
                   help="schedule: human rows in all, sum_t alpha_t M (default: 2 M)")
    p.add_argument("--out", default=None, help="output folder (default: runs/design-PROBLEM)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out that holds no jaxcollapse run")
    p.add_argument("--x64", action="store_true", help="compute in float64")
    return p


def _check(args) -> None:
    for name, lo in (("chains", 2), ("generations", 1), ("samples", 2), ("steps", 1),
                     ("n_real", 2), ("human", 2), ("budget", 1)):
        v = getattr(args, name)
        if v is not None and v < lo:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {lo}; got {v}")
    if not -2**63 <= args.seed < 2**63:
        raise ValueError(f"--seed must be a 64-bit integer; got {args.seed}")
    if not np.isfinite(args.target) or args.target <= 0:
        raise ValueError(f"--target must be > 0; got {args.target}")


def main(args) -> int:
    """Runs ``jaxcollapse design`` (parsed ``args``); returns the exit code."""
    if args.x64:
        import jax

        jax.config.update("jax_enable_x64", True)
    from jaxcollapse.experiments._common import output_folder

    if args.out is None:
        args.out = f"runs/design-{args.problem}"
    if args.generations is None:
        args.generations = GENERATIONS[args.problem]
    try:
        _check(args)
        with output_folder(args.out, f"design-{args.problem}", overwrite=args.overwrite) as out:
            return _run(args, out)
    except (ValueError, TypeError, FloatingPointError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"jaxcollapse design {args.problem}: error: {msg}", file=sys.stderr)
        return 2


def _run(args, out) -> int:
    import jax

    from jaxcollapse.io import save_json

    t0 = time.perf_counter()
    key = jax.random.key(args.seed)
    solve = {"weighted-fresh": _weighted_fresh, "smallest-alpha": _smallest_alpha,
             "bandwidth": _bandwidth, "schedule": _schedule}[args.problem]
    optimum, rows, lines = solve(key, args)
    seconds = time.perf_counter() - t0
    config = dict(experiment=f"design {args.problem}", seed=args.seed, chains=args.chains,
                  generations=args.generations, samples=args.samples, steps=args.steps,
                  x64=bool(args.x64))
    save_json(out / "summary.json", dict(config=config, seconds=seconds, table=rows,
                                         optimum=optimum))
    print(f"design {args.problem}: {args.chains} chains x {args.generations} generations, "
          f"M = {args.samples} ({seconds:.1f} s)")
    for line in lines:
        print(line)
    names = [k[:-5] for k in rows[0] if k.endswith("_mean") and not k.startswith("theory")]
    print("per generation at the optimum (mean +- se over chains):")
    for r in rows:
        cells = [f"{n}={r[n + '_mean']:.4g} +- {r[n + '_se']:.2g}" for n in names]
        cells += [f"theory={r[k]:.4g}" for k in r if k.startswith("theory")]
        print(f"  gen {r['generation']:>4}  " + "  ".join(cells))
    print(f"results: {out / 'summary.json'}")
    return 0


def _curve(loss, key, theta, name, theory=None):
    """Per-generation rows of the loss's trajectory at ``theta``: mean and se over
    chains (and the theory where given)."""
    traj = np.asarray(loss(key, theta), np.float64)
    mean, se = traj.mean(0), traj.std(0, ddof=1) / np.sqrt(traj.shape[0])
    rows = []
    for t in range(traj.shape[1]):
        row = {"generation": t, f"{name}_mean": mean[t], f"{name}_se": se[t]}
        if theory is not None:
            row[f"theory_{name}_mean"] = float(theory[t])
        rows.append(row)
    return rows


def _pm(x, se) -> str:
    return f"{x:.4f} +- {se:.4f}"


def _weighted_fresh(key, args):
    import jax

    from jaxcollapse import design
    from jaxcollapse.theory import mixing as tm

    M, G = args.samples, args.generations
    n_real = args.n_real or M
    loss = design.loops.weighted_fresh_loss(n_real=n_real, n_samples=M, n_generations=G,
                                            n_chains=args.chains)
    k_opt, k_curve = jax.random.split(key)
    r = design.minimize(loss, 0.3, key=k_opt, n_steps=args.steps,
                        projection=design.box(0.01, 1.0))
    w_star = float(tm.optimal_weight(n_real / M))
    f_star = float(tm.weighted_mean_variance(w_star, n_real, M))
    se = r.theta_se if r.theta_se is not None else float("nan")
    optimum = dict(w=r.theta, w_se=r.theta_se, se_method=r.se_method,
                   w_closed_form=w_star, value=r.value, value_se=r.value_se,
                   value_closed_form=f_star, z=(r.theta - w_star) / se if se > 0 else None)
    theory = tm.weighted_fresh_moments(G, r.theta, n_real, M).mean_shift
    lines = [f"w = {_pm(r.theta, se)}   closed form w* = {w_star:.4f} "
             f"(k = n_real/M = {n_real / M:g})",
             f"E(mu_n - mu_0)^2 at w: {_pm(r.value, r.value_se)}   closed form at w*: "
             f"{f_star:.4f}"]
    return optimum, _curve(loss, k_curve, r.theta, "mean_shift", theory), lines


def _pool(key, args):
    import jax

    from jaxcollapse import design

    n_pool = args.human or 5 * args.samples
    human = design.loops.human_pool(jax.random.fold_in(key, 1), n_pool)
    h = np.asarray(human, np.float64)
    moments = dict(source="fresh", human_mean=float(h.mean()), human_cov=float(h.var()),
                   n_pool=n_pool, mean0=0.0, cov0=1.0)
    return human, moments


def _bisect(f, lo, hi, tol=1e-12):
    """The root of an increasing-or-decreasing f on [lo, hi] (f(lo), f(hi) of opposite
    signs)."""
    f_lo = f(lo)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.sign(f(mid)) == np.sign(f_lo):
            lo = mid
        else:
            hi = mid
        if hi - lo < tol:
            break
    return 0.5 * (lo + hi)


def _smallest_alpha(key, args):
    import jax

    from jaxcollapse import design
    from jaxcollapse.theory import mixing_relaxed as mr

    M, G = args.samples, args.generations
    human, moments = _pool(key, args)
    loss = design.loops.mix_loss(human, n_samples=M, n_generations=G, n_chains=args.chains)
    k_opt, k_curve = jax.random.split(key)
    r = design.smallest(loss, k_opt, target=args.target)

    def excess(a):
        return float(mr.relaxed_moments(G, M, a, **moments).mean_shift[-1]) - args.target

    a_star = _bisect(excess, 0.0, 1.0) if excess(0.0) > 0 > excess(1.0) else None
    optimum = dict(alpha=r.theta, alpha_se=r.theta_se, alpha_closed_form=a_star,
                   target=args.target, value=r.value, value_se=r.value_se, slope=r.slope,
                   slope_se=r.slope_se, z=(r.theta - a_star) / r.theta_se
                   if a_star is not None and r.theta_se > 0 else None)
    theory = mr.relaxed_moments(G, M, r.theta, **moments).mean_shift
    closed = "-" if a_star is None else f"{a_star:.4f}"
    lines = [f"smallest alpha with E|mu_{G} - mu_0|^2 <= {args.target:g}: "
             f"{_pm(r.theta, r.theta_se)}   closed form (relaxed mix moments): {closed}",
             f"dE/dalpha there: {_pm(r.slope, r.slope_se)}"]
    return optimum, _curve(loss, k_curve, r.theta, "mean_shift", theory), lines


def _bandwidth(key, args):
    import jax

    from jaxcollapse import design

    M, G = args.samples, args.generations
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (M, 1))
    s0 = float(np.var(np.asarray(x0, np.float64)))
    loss = design.loops.kde_loss(x0, n_samples=M, n_generations=G, n_chains=args.chains)
    k_opt, k_curve = jax.random.split(key)
    h_star = float(np.sqrt(s0 / (M - 1)))
    r = design.solve(loss, k_opt, target=1.0, bracket=(0.05 * h_star, 20.0 * h_star))
    c = 1.0 - 1.0 / M
    t = np.arange(G + 1)
    theory = c**t + r.theta**2 * c * (1 - c**t) / (1 - c) / s0
    optimum = dict(h=r.theta, h_se=r.theta_se, h_closed_form=h_star, h2=r.theta**2,
                   h2_closed_form=h_star**2, s0_sq=s0, value=r.value, value_se=r.value_se,
                   z=(r.theta - h_star) / r.theta_se if r.theta_se > 0 else None)
    lines = [f"h keeping E s_n^2 = s_0^2: {_pm(r.theta, r.theta_se)}   closed form "
             f"sqrt(s_0^2/(M - 1)) = {h_star:.4f} (s_0^2 = {s0:.4f})"]
    return optimum, _curve(loss, k_curve, r.theta, "data_var", theory), lines


def _schedule(key, args):
    import jax

    from jaxcollapse import design

    M, G = args.samples, args.generations
    budget = args.budget if args.budget is not None else 2 * M
    b = design.budget(budget / M, G)
    human, _ = _pool(key, args)
    loss = design.loops.mix_loss(human, n_samples=M, n_generations=G, n_chains=args.chains,
                                 metric="w2sq")
    k_opt, k_eval = jax.random.split(key)
    r = design.minimize(loss, b.constant(), key=k_opt, n_steps=args.steps, projection=b,
                        generation="mean")
    const = design.value_and_grad(loss, k_eval, b.constant(), generation="mean")
    best = design.value_and_grad(loss, k_eval, r.theta, generation="mean")
    gain = const.chain_values - best.chain_values
    g, g_se = float(gain.mean()), float(gain.std(ddof=1) / np.sqrt(gain.size))
    optimum = dict(alpha=r.theta, constant_alpha=b.total / G, budget_rows=budget,
                   value=best.value, value_se=best.value_se, constant_value=const.value,
                   constant_value_se=const.value_se, gain=g, gain_se=g_se,
                   se_method=r.se_method)
    rows = _curve(loss, k_eval, r.theta, "w2sq")
    for row, c in zip(rows, _curve(loss, k_eval, b.constant(), "w2sq_const"), strict=True):
        row.update({k: v for k, v in c.items() if k != "generation"})
    lines = ["alpha_t = " + " ".join(f"{a:.3f}" for a in r.theta),
             f"mean E W2^2 over generations 1..{G}: schedule {_pm(best.value, best.value_se)}"
             f", constant alpha = {b.total / G:.4f}: {_pm(const.value, const.value_se)}",
             f"gain (same chains): {_pm(g, g_se)} ({g / g_se:.1f} SE)"]
    return optimum, rows, lines
