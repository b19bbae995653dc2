"""The seed study's recursive protocol for a transformer language model.

Generation 0 trains on the human training text. Generation n >= 1 trains, from
the *same* initialisation, on text made by generation n - 1: the human training
stream is cut into ``prompt_len``-token blocks and each block is continued for
``gen_len`` tokens (sampling or beam search), so the synthetic set is as large as
the human one. Arms (THEORY.md section 1):

- ``alpha=a``: a random fraction ``a`` of the blocks (fresh each generation) is
  kept as human text, the others are replaced by continuations (``a = 0`` is the
  replace regime, ``a = 0.1`` the seed study's mitigation);
- ``accumulate``: the pool grows: human text plus every synthetic set so far.

Each generation reports test/validation perplexity and next-token accuracy on the
human splits, the perplexities of its synthetic training sequences under the
generation-0 model (collapse shows as lower perplexity with a long tail) beside
held-out human text scored the same way, and
unigram statistics of the synthetic text against the human unigram distribution
(types that vanished, the human mass they carried, a fitted Zipf exponent;
THEORY.md section 4). After every generation a checkpoint (parameters, optimiser
state, key, metrics so far) is written atomically; ``resume=True`` continues an
interrupted run and gives the same result as an uninterrupted one.

References:
    Shumailov et al., Nature 631 (2024), THEORY.md section 8; Gerstgrasser et al.,
    arXiv 2404.01413 (accumulate); Dohmatob et al., A Tale of Tails, ICML 2024
    (lost tails, THEORY.md section 4).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcollapse._mesh import DATA_AXIS, resolve_mesh
from jaxcollapse._progress import Progress
from jaxcollapse.data.mnist import ImageData
from jaxcollapse.data.wikitext import TextCorpus
from jaxcollapse.io import save_npz
from jaxcollapse.models.checkpoint import load_checkpoint, read_meta, save_checkpoint
from jaxcollapse.models.generate import beam_search, sample
from jaxcollapse.models.train import (
    TrainState,
    evaluate,
    init_state,
    make_optimizer,
    make_train_step,
    sample_windows,
    sequence_perplexity,
)
from jaxcollapse.models.transformer import TransformerConfig, init_params
from jaxcollapse.models.vae import (
    VAEConfig,
    VAEState,
    decode_prior,
    elbo,
    encode_mean,
    init_vae,
    iwae_bound,
    make_vae_train_step,
    vae_optimizer,
)

DECODINGS = ("sample", "beam")


@dataclasses.dataclass(frozen=True)
class LMProtocol:
    """Static settings of one recursive language-model run.

    Attributes:
        model: the transformer configuration.
        n_generations: generations after generation 0.
        steps: optimiser steps per generation (every generation trains as long).
        batch_size: windows per step.
        seq_len: training window length (<= ``model.max_len``).
        learning_rate, warmup_steps, weight_decay: AdamW with cosine decay.
        prompt_len, gen_len: human prompt and continuation lengths (64 and 64 in
            the seed study); ``prompt_len + gen_len <= model.max_len``.
        decoding: ``"sample"`` or ``"beam"``.
        temperature, top_k, top_p, repetition_penalty: sampling settings.
        n_beams: beams for ``decoding="beam"`` (5 in the seed study).
        gen_batch: prompts per generation call.
        eval_tokens: evaluate on the first this-many tokens of each human split
            (``None``: the whole split, exact).
        n_score: synthetic sequences scored by the generation-0 model per generation.

    Example:
        >>> from jaxcollapse.models import preset
        >>> p = LMProtocol(preset("tiny", 100), steps=10, warmup_steps=2, seq_len=32,
        ...                prompt_len=16, gen_len=16)
        >>> p.to_dict()["model"]["d_model"], p.n_generations
        (32, 3)
    """

    model: TransformerConfig
    n_generations: int = 3
    steps: int = 500
    batch_size: int = 16
    seq_len: int = 128
    learning_rate: float = 3e-3
    warmup_steps: int = 50
    weight_decay: float = 0.1
    prompt_len: int = 64
    gen_len: int = 64
    decoding: str = "sample"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    n_beams: int = 5
    gen_batch: int = 256
    eval_tokens: int | None = None
    n_score: int = 512

    def __post_init__(self):
        c = self.model
        for f in ("n_generations", "steps", "batch_size", "seq_len", "prompt_len", "gen_len",
                  "gen_batch", "n_score", "n_beams"):
            v = getattr(self, f)
            if not isinstance(v, int) or v < (0 if f == "n_generations" else 1):
                raise ValueError(f"{f} must be a positive integer; got {v!r}")
        if self.seq_len > c.max_len:
            raise ValueError(f"seq_len {self.seq_len} exceeds the model's context "
                             f"max_len={c.max_len}")
        if self.prompt_len + self.gen_len > c.max_len:
            raise ValueError(f"prompt_len {self.prompt_len} + gen_len {self.gen_len} exceeds "
                             f"the model's context max_len={c.max_len}")
        if self.decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {DECODINGS}; got {self.decoding!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0; got {self.temperature}")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps={self.steps}]; "
                             f"got {self.warmup_steps}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["model"] = dataclasses.asdict(self.model)
        return d


class Arm(NamedTuple):
    """One arm: human fraction ``alpha`` per generation, or the accumulate regime.

    Example:
        >>> Arm("alpha=0.1", 0.1, False).key_id
        100000
    """

    name: str
    alpha: float
    accumulate: bool

    @property
    def key_id(self) -> int:
        return 10_000_001 if self.accumulate else int(round(self.alpha * 1_000_000))


def make_arms(alphas=(0.0, 0.1), accumulate: bool = True) -> list[Arm]:
    """Arms for human fractions ``alphas`` (and the accumulate regime).

    Example:
        >>> [a.name for a in make_arms([0, 0.1])]
        ['alpha=0', 'alpha=0.1', 'accumulate']
        >>> make_arms([1.5])
        Traceback (most recent call last):
        ...
        ValueError: alpha must lie in [0, 1]; got 1.5
    """
    arms = []
    for a in alphas:
        a = float(a)
        if not (math.isfinite(a) and 0 <= a <= 1):
            raise ValueError(f"alpha must lie in [0, 1]; got {a}")
        arms.append(Arm(f"alpha={a:g}", a, False))
    if accumulate:
        arms.append(Arm("accumulate", 0.0, True))
    if len({a.name for a in arms}) != len(arms):
        raise ValueError(f"alphas must be distinct; got {list(alphas)}")
    if not arms:
        raise ValueError("no arms: give at least one alpha or accumulate=True")
    return arms


def unigram_stats(tokens: np.ndarray, human_counts: np.ndarray, *,
                  zipf_ranks: int = 1000) -> dict[str, float]:
    """Unigram statistics of generated text against the human unigram distribution.

    Args:
        tokens: generated token ids (any shape).
        human_counts: ``(V,)`` token counts of the human training text.
        zipf_ranks: fit the Zipf exponent on the most frequent this-many types.

    Returns:
        ``types`` (distinct types generated), ``vanished_types`` (human types never
        generated), ``lost_mass`` (human probability mass of those types: the
        empirical analogue of THEORY.md section 4's lost mass), ``zipf`` (beta in
        frequency ~ rank^-beta, least squares in log-log) and ``entropy`` (nats).

    Example:
        >>> h = np.array([4, 2, 1, 1])
        >>> s = unigram_stats(np.array([0, 0, 1, 0]), h)
        >>> s["vanished_types"], s["lost_mass"]
        (2, 0.25)

    References:
        Dohmatob et al., ICML 2024; Shumailov et al., Nature 631 (2024).
    """
    counts = np.bincount(np.asarray(tokens).reshape(-1), minlength=len(human_counts))
    human = np.asarray(human_counts, dtype=np.float64)
    gone = (human > 0) & (counts == 0)
    f = np.sort(counts[counts > 0])[::-1][:zipf_ranks].astype(np.float64)
    zipf = float("nan")
    if len(f) >= 3:
        r = np.log(np.arange(1, len(f) + 1))
        zipf = float(-np.polyfit(r, np.log(f), 1)[0])
    p = counts[counts > 0] / counts.sum()
    return dict(types=int((counts > 0).sum()), vanished_types=int(gone.sum()),
                lost_mass=float(human[gone].sum() / human.sum()), zipf=zipf,
                entropy=float(-(p * np.log(p)).sum()))


class LMRun(NamedTuple):
    """Results of :func:`run_lm`.

    Attributes:
        records: arm name -> list of per-generation metric dicts (generation 0 first).
        sample_perplexities: arm name -> list (generations 1..n) of ``(n_score,)``
            perplexities of the synthetic training sequences under generation 0
            (entry ``i`` is the text written by the generation-``i`` model).
        human_perplexities: the reference for those histograms: ``(m,)``
            perplexities under generation 0 of held-out human text scored the same
            way: the test split cut into ``prompt_len + gen_len`` blocks, the last
            ``gen_len`` tokens of each scored given the first ``prompt_len``
            (``m = min(n_score, blocks in the test split)``).

    Example:
        >>> r = LMRun({"alpha=0": [dict(generation=0, test_ppl=120.0)]}, {"alpha=0": []},
        ...           np.array([95.0, 130.0]))
        >>> r.records["alpha=0"][0]["test_ppl"], float(np.median(r.human_perplexities))
        (120.0, 112.5)
    """

    records: dict[str, list[dict]]
    sample_perplexities: dict[str, list[np.ndarray]]
    human_perplexities: np.ndarray


class NaNLossError(FloatingPointError):
    """The training loss became NaN or infinite; the last good checkpoint is kept.

    Example:
        >>> issubclass(NaNLossError, FloatingPointError)
        True
    """


@functools.lru_cache(maxsize=8)
def _compiled(model: TransformerConfig, learning_rate: float, steps: int, warmup_steps: int,
              weight_decay: float, mesh=None):
    # One optimiser and one jitted step per training setup, shared by every seed,
    # arm, generation and resumed call (a new jit object would compile again).
    tx = make_optimizer(learning_rate, total_steps=steps, warmup_steps=warmup_steps,
                        weight_decay=weight_decay)
    return tx, make_train_step(model, tx, mesh=mesh)


def _training_mesh(devices, mesh, batch_size: int):
    """The data-parallel mesh (``None``: one device, the default) and a batch check."""
    if devices is None and mesh is None:
        return None
    mesh = resolve_mesh(devices, mesh, DATA_AXIS, "the batch")
    k = 1 if mesh is None else int(mesh.devices.size)
    if batch_size % k:
        raise ValueError(f"batch_size={batch_size} must be a multiple of the {k} devices "
                         f"that share each batch")
    return mesh


def _train(key, protocol: LMProtocol, tx, step, stream: np.ndarray, init_p, label: str,
           progress: bool) -> tuple[TrainState, float]:
    # Copy: the jitted step donates the state, and init_p is reused by every generation.
    state = init_state(key, protocol.model, tx, params=jax.tree.map(jnp.array, init_p))
    keys = jax.random.split(key, protocol.steps)
    losses = []
    tok_per_step = protocol.batch_size * protocol.seq_len
    check = 50
    with Progress(protocol.steps, label, unit="step", enabled=progress) as bar:
        t0 = time.perf_counter()
        for i in range(protocol.steps):
            batch = sample_windows(keys[i], stream, protocol.batch_size, protocol.seq_len + 1)
            state, loss = step(state, batch)
            losses.append(loss)
            if (i + 1) % check == 0 or i + 1 == protocol.steps:
                recent = np.asarray(jax.device_get(losses[-check:]), dtype=np.float64)
                if not np.all(np.isfinite(recent)):
                    bad = i + 1 - len(recent) + int(np.argmin(np.isfinite(recent))) + 1
                    raise NaNLossError(f"{label}: the training loss became "
                                       f"{recent[~np.isfinite(recent)][0]} at step {bad}; "
                                       "stopping (lower the learning rate); the last good "
                                       "checkpoint is kept")
                rate = (i + 1) * tok_per_step / (time.perf_counter() - t0)
                bar.update(i + 1, f"loss {recent[-1]:.3f} {rate:,.0f} tok/s")
    final = float(np.mean(np.asarray(jax.device_get(losses[-check:]), dtype=np.float64)))
    return state, final


def _generate(key, protocol: LMProtocol, params, prompts: np.ndarray, label: str,
              progress: bool) -> np.ndarray:
    n = len(prompts)
    b = min(protocol.gen_batch, n)
    out = np.zeros((n, protocol.gen_len), np.int32)
    keys = jax.random.split(key, -(-n // b))
    with Progress(n * protocol.gen_len, label, unit="tok", enabled=progress) as bar:
        for j, s in enumerate(range(0, n, b)):
            chunk = prompts[s:s + b]
            m = len(chunk)
            if m < b:  # pad the last batch so every call has the same shape
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], b - m, axis=0)])
            if protocol.decoding == "beam":
                toks = beam_search(params, protocol.model, chunk, protocol.gen_len,
                                   n_beams=protocol.n_beams,
                                   repetition_penalty=protocol.repetition_penalty)[0]
            else:
                toks = sample(keys[j], params, protocol.model, chunk, protocol.gen_len,
                              temperature=protocol.temperature, top_k=protocol.top_k,
                              top_p=protocol.top_p,
                              repetition_penalty=protocol.repetition_penalty)
            out[s:s + m] = np.asarray(toks)[:m]
            bar.update(min(s + b, n) * protocol.gen_len)
    return out


def _evaluate(params, protocol: LMProtocol, corpus: TextCorpus) -> dict:
    cut = (lambda x: x) if protocol.eval_tokens is None else \
        (lambda x: x[: protocol.eval_tokens])
    cfg = protocol.model
    v = evaluate(params, cfg, cut(corpus.valid), seq_len=protocol.seq_len)
    t = evaluate(params, cfg, cut(corpus.test), seq_len=protocol.seq_len)
    return dict(valid_ppl=v.perplexity, valid_acc=v.accuracy, test_ppl=t.perplexity,
                test_acc=t.accuracy, test_tokens=t.n_tokens)


def _meta(protocol: LMProtocol, corpus: TextCorpus, key) -> dict:
    proto = protocol.to_dict()
    proto.pop("n_generations")  # a run may be resumed with more generations
    meta = dict(protocol=proto, vocab=corpus.vocab.fingerprint, corpus=corpus.name,
                n_train=int(len(corpus.train)),
                key=np.asarray(jax.random.key_data(key)).tolist())
    return json.loads(json.dumps(meta))  # tuples -> lists, as read back from a checkpoint


def _check_meta(path: Path, want: dict,
                keys: tuple[str, ...] = ("protocol", "corpus", "n_train", "key")) -> None:
    got = read_meta(path)
    if "vocab" in want and got.get("vocab") != want["vocab"]:
        raise ValueError(f"vocabulary mismatch on resume: checkpoint {path} was made with "
                         f"vocabulary {got.get('vocab')} ({got.get('corpus')}), this run has "
                         f"{want['vocab']} ({want['corpus']})")
    for k in keys:
        if got.get(k) != want[k]:
            diff = k
            if k == "protocol":
                g, w = got.get(k, {}), want[k]
                diff = ", ".join(f"{f}: {g.get(f)} vs {w.get(f)}" for f in w
                                 if g.get(f) != w.get(f))
            raise ValueError(f"checkpoint {path} is from a different config ({diff}); "
                             "use another --out or drop --resume")


def _output_folders(arms: list[Arm], out, resume: bool) -> tuple[Path | None, Path | None]:
    """``(out, out / "checkpoints")`` as paths (``None`` without ``out``), after the
    checks of the arguments :func:`run_lm` and :func:`run_vae` share."""
    if not arms:
        raise ValueError("arms must not be empty")
    out = None if out is None else Path(out)
    if resume and out is None:
        raise ValueError("resume=True needs an output folder (out)")
    return out, None if out is None else out / "checkpoints"


def _resume_from(path: Path | None, resume: bool, meta: dict, template,
                 keys: tuple[str, ...] = ("protocol", "corpus", "n_train", "key")):
    """``(tree, metadata)`` of the checkpoint at ``path`` when resuming from it (it
    exists and its metadata match ``meta`` on ``keys``), else ``None``; ``template()``
    gives the structure of the tree."""
    if not (resume and path is not None and path.is_file()):
        return None
    _check_meta(path, meta, keys)
    return load_checkpoint(path, template())


def run_lm(key: jax.Array, corpus: TextCorpus, protocol: LMProtocol, arms: list[Arm], *,
           out: str | Path | None = None, resume: bool = False, base_params=None,
           progress: bool = False, devices: int | Sequence[jax.Device] | None = None,
           mesh: jax.sharding.Mesh | None = None) -> LMRun:
    """Runs the recursive language-model protocol for one seed.

    Args:
        key: PRNG key (one seed): it fixes the initialisation, the training
            windows, the human blocks kept and the sampled continuations.
        corpus: the human text (:class:`~jaxcollapse.data.TextCorpus`).
        protocol: an :class:`LMProtocol`.
        arms: from :func:`make_arms`.
        out: folder for checkpoints and per-sample perplexities (``None``: none).
        resume: continue from the checkpoints in ``out`` (finished generations are
            not redone; the result equals an uninterrupted run).
        base_params: start every generation from these parameters instead of a
            fresh initialisation (a base checkpoint).
        progress: show progress bars (tokens/s) on stderr.
        devices: train data-parallel over this many devices (an int) or these
            devices: each batch of windows is split over them, parameters and
            optimiser state replicated (``batch_size`` must be a multiple of their
            number). ``None`` (default): one device.
        mesh: alternatively, a ``jax.sharding.Mesh`` with an axis named ``"data"``.

    Returns:
        :class:`LMRun`.

    Raises:
        ValueError: bad settings, a corpus too short, or (on resume) a checkpoint
            from a different config or vocabulary.
        NaNLossError: the loss became NaN; checkpoints of finished generations stay.

    Example:
        >>> import jax, numpy as np
        >>> from jaxcollapse.data import build_vocab, TextCorpus
        >>> from jaxcollapse.models import preset
        >>> rng = np.random.default_rng(0)
        >>> toks = (rng.zipf(1.5, 3000) % 40).astype(np.int32)
        >>> corpus = TextCorpus(toks, toks[:200], toks[200:400],
        ...                     build_vocab([[str(i) for i in range(40)]]), "toy")
        >>> proto = LMProtocol(preset("tiny", 40, d_model=16, max_len=16), n_generations=1,
        ...                    steps=20, warmup_steps=2, batch_size=4, seq_len=16,
        ...                    prompt_len=8, gen_len=8, n_score=16)
        >>> r = run_lm(jax.random.key(0), corpus, proto, make_arms([0.0], accumulate=False))
        >>> [rec["generation"] for rec in r.records["alpha=0"]]
        [0, 1]

    References:
        Shumailov et al., Nature 631 (2024), THEORY.md section 8.
    """
    cfg = protocol.model
    if len(corpus.vocab) != cfg.vocab_size:
        raise ValueError(f"the model's vocab_size {cfg.vocab_size} differs from the corpus "
                         f"vocabulary ({len(corpus.vocab)} types)")
    n_blocks = len(corpus.train) // protocol.prompt_len
    if n_blocks < 2 or len(corpus.train) < protocol.seq_len + 1:
        raise ValueError(f"the training text has {len(corpus.train)} tokens: too short for "
                         f"prompt_len={protocol.prompt_len}, seq_len={protocol.seq_len}")
    out, ckpt = _output_folders(arms, out, resume)
    meta = _meta(protocol, corpus, key)
    k_init, k_gen0, k_arms = (jax.random.fold_in(key, i) for i in range(3))
    p_init = init_params(k_init, cfg) if base_params is None else base_params
    human = np.asarray(corpus.train)
    blocks = human[: n_blocks * protocol.prompt_len].reshape(n_blocks, protocol.prompt_len)
    human_counts = np.bincount(human, minlength=cfg.vocab_size)
    tx, step = _compiled(cfg, protocol.learning_rate, protocol.steps, protocol.warmup_steps,
                         protocol.weight_decay,
                         _training_mesh(devices, mesh, protocol.batch_size))

    def save(path, state, extra):
        if ckpt is not None:
            save_checkpoint(path, state, {**meta, **extra})

    # Generation 0: shared by every arm.
    g0 = None if ckpt is None else ckpt / "gen0.npz"
    loaded = _resume_from(g0, resume, meta, lambda: init_state(k_gen0, cfg, tx, params=p_init))
    if loaded is not None:
        state0, m = loaded
        rec0 = m["records"][0]
    else:
        t0 = time.perf_counter()
        state0, loss = _train(k_gen0, protocol, tx, step, human, p_init, "gen 0 train",
                              progress)
        rec0 = dict(generation=0, train_loss=loss, train_tokens=len(human),
                    **_evaluate(state0.params, protocol, corpus),
                    human=unigram_stats(human, human_counts), seconds=time.perf_counter() - t0)
        save(g0, state0, dict(generation=0, records=[rec0]))
    params0 = state0.params
    # Recomputed (not checkpointed): a deterministic function of params0 and the test split.
    block = protocol.prompt_len + protocol.gen_len
    test = np.asarray(corpus.test)
    n_human = min(protocol.n_score, len(test) // block)
    human_ppl = (sequence_perplexity(params0, cfg, test[: n_human * block].reshape(n_human, block),
                                     start=protocol.prompt_len) if n_human else np.zeros(0))

    records: dict[str, list[dict]] = {}
    sample_ppl: dict[str, list[np.ndarray]] = {}
    for arm in arms:
        k_arm = jax.random.fold_in(k_arms, arm.key_id)
        recs, ppls, synths = [rec0], [], []
        params, start = params0, 1
        latest = None if ckpt is None else ckpt / arm.name / "latest.npz"
        loaded = _resume_from(latest, resume, meta,
                              lambda k=k_arm: (init_state(k, cfg, tx, params=p_init), k))
        if loaded is not None:
            st, m = loaded
            params, start = st[0].params, m["generation"] + 1
            recs = m["records"]
            for n in range(1, start):
                with np.load(ckpt / arm.name / f"synthetic_gen{n}.npz") as z:
                    synths.append(z["tokens"])
                    ppls.append(z["gen0_ppl"])
        for n in range(start, protocol.n_generations + 1):
            t0 = time.perf_counter()
            kn = jax.random.fold_in(k_arm, n)
            k_perm, k_samp, k_train, k_mix = jax.random.split(kn, 4)
            n_h = 0 if arm.accumulate else int(round(arm.alpha * n_blocks))
            perm = np.asarray(jax.random.permutation(k_perm, n_blocks))
            keep, prompt_idx = np.sort(perm[:n_h]), np.sort(perm[n_h:])
            label = f"{arm.name} gen {n}"
            synth = (_generate(k_samp, protocol, params, blocks[prompt_idx], label + " sample",
                               progress) if len(prompt_idx) else
                     np.zeros((0, protocol.gen_len), np.int32))
            synths.append(synth)
            if arm.accumulate:
                stream = np.concatenate([human] + [s.reshape(-1) for s in synths])
            else:
                rows = list(blocks[keep]) + list(synth)
                order = np.asarray(jax.random.permutation(k_mix, len(rows)))
                stream = np.concatenate([rows[i] for i in order]) if rows else human
            n_sc = min(protocol.n_score, len(synth))
            if n_sc:
                seqs = np.concatenate([blocks[prompt_idx[:n_sc]], synth[:n_sc]], axis=1)
                ppl = sequence_perplexity(params0, cfg, seqs, start=protocol.prompt_len)
            else:
                ppl = np.zeros(0)
            ppls.append(ppl)
            state, loss = _train(k_train, protocol, tx, step, stream, p_init,
                                 label + " train", progress)
            params = state.params
            rec = dict(generation=n, train_loss=loss, train_tokens=int(len(stream)),
                       human_tokens=int(n_h * protocol.prompt_len + (len(human) if
                                                                       arm.accumulate else 0)),
                       **_evaluate(params, protocol, corpus),
                       synthetic=unigram_stats(synth, human_counts) if synth.size else None,
                       gen0_ppl_median=float(np.median(ppl)) if ppl.size else None,
                       gen0_ppl_p95=float(np.percentile(ppl, 95)) if ppl.size else None,
                       seconds=time.perf_counter() - t0)
            recs.append(rec)
            if ckpt is not None:
                save_npz(ckpt / arm.name / f"synthetic_gen{n}.npz",
                         dict(tokens=synth, gen0_ppl=ppl))
                # The checkpoint is written last: it is the commit point of generation n.
                save(latest, (state, k_arm), dict(generation=n, records=recs))
        records[arm.name] = recs
        sample_ppl[arm.name] = ppls
    if out is not None:
        save_npz(out / "gen0_perplexities.npz",
                 {"human/test": human_ppl,
                  **{f"{a}/gen{i + 1}": p for a, ps in sample_ppl.items()
                     for i, p in enumerate(ps)}})
    return LMRun(records, sample_ppl, human_ppl)


def format_table(runs: dict[str, list[dict]] | list[dict[str, list[dict]]]) -> str:
    """A generation x arm table of test perplexity and accuracy (mean over seeds).

    Example:
        >>> r = {"alpha=0": [dict(generation=0, test_ppl=100.0, test_acc=0.2)]}
        >>> print(format_table(r))
        gen  alpha=0 ppl  alpha=0 acc
          0       100.00       0.2000
    """
    runs = [runs] if isinstance(runs, dict) else list(runs)
    arms = list(runs[0])
    n_gen = max(len(r) for r in runs[0].values())
    head = "gen" + "".join(f"  {a + ' ppl':>11s}  {a + ' acc':>11s}" for a in arms)
    lines = [head]
    for g in range(n_gen):
        row = f"{g:3d}"
        for a in arms:
            vals = [r[a][g] for r in runs if len(r[a]) > g]
            row += f"  {np.mean([v['test_ppl'] for v in vals]):11.2f}"
            row += f"  {np.mean([v['test_acc'] for v in vals]):11.4f}"
        lines.append(row)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# The VAE protocol.


@dataclasses.dataclass(frozen=True)
class VAEProtocol:
    """Static settings of one recursive VAE run.

    Attributes:
        model: the :class:`~jaxcollapse.models.vae.VAEConfig`.
        n_generations: generations after generation 0.
        steps, batch_size, learning_rate: training of every generation (from the
            same initialisation).
        n_importance: samples of the importance-weighted test bound.
        n_eval: test images used for the ELBO / IWAE bound (``None``: all).
        n_probe: generated images encoded by the generation-0 encoder and classified.

    Example:
        >>> from jaxcollapse.models.vae import VAE_PRESETS
        >>> VAEProtocol(VAE_PRESETS["digits"], n_generations=2, steps=10).steps
        10
    """

    model: VAEConfig
    n_generations: int = 5
    steps: int = 1000
    batch_size: int = 64
    learning_rate: float = 1e-3
    n_importance: int = 64
    n_eval: int | None = 1000
    n_probe: int = 1000

    def __post_init__(self):
        for f in ("steps", "batch_size", "n_importance", "n_probe"):
            v = getattr(self, f)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{f} must be a positive integer; got {v!r}")
        if not isinstance(self.n_generations, int) or self.n_generations < 0:
            raise ValueError(f"n_generations must be >= 0; got {self.n_generations!r}")


def save_image_grid(path: str | Path, images: np.ndarray, ncol: int = 8) -> Path:
    """Writes images ``(n, h, w)`` in [0, 1] as one greyscale PNG grid (no extra deps).

    Example:
        >>> import tempfile
        >>> p = save_image_grid(tempfile.mkdtemp() + "/g.png", np.zeros((3, 4, 4)), ncol=2)
        >>> p.read_bytes()[:4] == b"\\x89PNG"
        True
    """
    import struct
    import zlib

    from jaxcollapse.io import atomic_write_bytes

    x = np.clip(np.asarray(images, np.float64), 0, 1)
    n, h, w = x.shape
    nrow = -(-n // ncol)
    grid = np.ones((nrow * (h + 1) + 1, ncol * (w + 1) + 1))
    for i in range(n):
        r, c = divmod(i, ncol)
        grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = x[i]
    img = (grid * 255).round().astype(np.uint8)

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    raw = b"".join(b"\x00" + row.tobytes() for row in img)
    png = (b"\x89PNG\r\n\x1a\n"
           + chunk(b"IHDR", struct.pack(">IIBBBBB", img.shape[1], img.shape[0], 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    return atomic_write_bytes(path, png)


@functools.partial(jax.jit, static_argnames=("steps",))
def _fit_softmax(x, y, steps):
    # Multinomial logistic regression on pixels, full batch, Adam: a cheap "human"
    # digit classifier for the class histograms of generated images.
    w0 = (jnp.zeros((x.shape[1], 10), x.dtype), jnp.zeros(10, x.dtype))
    tx = optax.adam(0.05)

    def loss(w):
        return optax.softmax_cross_entropy_with_integer_labels(x @ w[0] + w[1], y).mean() \
            + 1e-4 * (w[0] ** 2).sum()

    def body(carry, _):
        w, s = carry
        g = jax.grad(loss)(w)
        u, s = tx.update(g, s, w)
        return (optax.apply_updates(w, u), s), None

    (w, _), _ = jax.lax.scan(body, (w0, tx.init(w0)), None, length=steps)
    return w


@functools.lru_cache(maxsize=8)
def _compiled_vae(model: VAEConfig, learning_rate: float, steps: int, mesh=None):
    tx = vae_optimizer(learning_rate, steps)
    return tx, make_vae_train_step(model, tx, mesh=mesh)


@functools.partial(jax.jit, static_argnames=("config", "n"))
def _probe(key, params, params0, config, n, w, b):
    # Generated images, their generation-0 encodings and predicted digit classes.
    x = decode_prior(key, params, config, n)
    z = encode_mean(params0, config, x)
    return x, z, jnp.argmax(x.reshape(n, -1) @ w + b, axis=-1)


_decode_jit = jax.jit(decode_prior, static_argnums=(2, 3))


class VAERun(NamedTuple):
    """Results of :func:`run_vae`.

    Attributes:
        records: arm name -> list of per-generation metric dicts (generation 0 first).
        samples: arm name -> list (generation 0 first) of ``(n, h, w)`` decoder
            outputs for z ~ N(0, I) in [0, 1], ``n = min(64, n_probe)``: the images
            of the PNG sample grids (generation 0 is shared by every arm).

    Example:
        >>> r = VAERun({"alpha=0": [dict(generation=0, test_elbo=-80.0)]},
        ...            {"alpha=0": [np.zeros((4, 8, 8))]})
        >>> r.records["alpha=0"][0]["test_elbo"], r.samples["alpha=0"][0].shape
        (-80.0, (4, 8, 8))
    """

    records: dict[str, list[dict]]
    samples: dict[str, list[np.ndarray]]


@functools.partial(jax.jit, static_argnames=("config", "n_importance"))
def _vae_eval(key, params, config, x, n_importance):
    k1, k2 = jax.random.split(key)
    return (elbo(k1, params, config, x).mean(),
            iwae_bound(k2, params, config, x, n_importance).mean())


def run_vae(key: jax.Array, data: ImageData, protocol: VAEProtocol, arms: list[Arm], *,
            out: str | Path | None = None, resume: bool = False,
            progress: bool = False, devices: int | Sequence[jax.Device] | None = None,
            mesh: jax.sharding.Mesh | None = None) -> VAERun:
    """Runs the recursive VAE protocol for one seed.

    Generation 0 trains on the human training images; generation n on as many
    decoder outputs for z ~ N(0, I) from generation n - 1 (a fraction alpha of
    fresh human images mixed in, or the accumulate pool). Per generation: test
    ELBO and importance-weighted bound (nats per image), the spread (RMS std per
    latent dimension) of generated images under the generation-0 encoder, their
    pixel variance (the variance across images, averaged over pixels), the
    class histogram of generated images under a classifier trained on human data,
    and an 8x8 PNG grid of samples. Checkpoints and ``resume`` as in :func:`run_lm`.

    Args:
        key: PRNG key (one seed).
        data: :class:`~jaxcollapse.data.ImageData` whose image size matches the model.
        protocol: a :class:`VAEProtocol`.
        arms: from :func:`make_arms`.
        out: folder for checkpoints and PNG grids (``None``: none).
        resume: continue from the checkpoints in ``out``.
        progress: show progress bars.
        devices, mesh: data-parallel training, as for :func:`run_lm`.

    Returns:
        :class:`VAERun`.

    Example:
        >>> import jax
        >>> from jaxcollapse.data import ImageData
        >>> from jaxcollapse.models.vae import VAEConfig
        >>> x = np.random.default_rng(0).uniform(size=(64, 8, 8)).astype(np.float32)
        >>> y = np.arange(64) % 10
        >>> d = ImageData(x[:48], y[:48], x[48:], y[48:], "noise")
        >>> proto = VAEProtocol(VAEConfig((8, 8), 4, 16, "mlp"), n_generations=1, steps=5,
        ...                     batch_size=8, n_importance=4, n_probe=16)
        >>> r = run_vae(jax.random.key(0), d, proto, make_arms([0.0], accumulate=False))
        >>> len(r.records["alpha=0"]), r.samples["alpha=0"][1].shape
        (2, (16, 8, 8))

    References:
        Shumailov et al., Nature 631 (2024), THEORY.md section 8; Burda et al. (2016).
    """
    cfg = protocol.model
    if tuple(data.train_x.shape[1:]) != tuple(cfg.image_shape):
        raise ValueError(f"images have shape {data.train_x.shape[1:]}, the model expects "
                         f"{cfg.image_shape}")
    out, ckpt = _output_folders(arms, out, resume)
    n = len(data.train_x)
    meta = dict(protocol={**dataclasses.asdict(protocol), "n_generations": None},
                data=data.name, n_train=n, key=np.asarray(jax.random.key_data(key)).tolist())
    meta = json.loads(json.dumps(meta))  # tuples -> lists, as read back from a checkpoint
    k_init, k_gen0, k_arms, k_eval = (jax.random.fold_in(key, i) for i in range(4))
    p_init = init_vae(k_init, cfg)
    tx, step = _compiled_vae(cfg, protocol.learning_rate, protocol.steps,
                             _training_mesh(devices, mesh, protocol.batch_size))
    test_x = jnp.asarray(data.test_x[: protocol.n_eval])
    human = np.asarray(data.train_x)
    flat = lambda a: jnp.asarray(a).reshape(len(a), -1)
    clf = _fit_softmax(flat(human), jnp.asarray(data.train_y), 300)

    def train(k, images, label):
        state = VAEState(jax.tree.map(jnp.array, p_init), tx.init(p_init),
                         jnp.zeros((), jnp.int32))
        k_batch, k_step = jax.random.split(k)
        idx = np.asarray(jax.random.randint(k_batch, (protocol.steps, protocol.batch_size),
                                            0, len(images)))
        keys = jax.random.split(k_step, protocol.steps)
        losses = []
        with Progress(protocol.steps, label, unit="step", enabled=progress) as bar:
            t0 = time.perf_counter()
            for i in range(protocol.steps):
                state, loss = step(state, keys[i], images[idx[i]])
                losses.append(loss)
                if (i + 1) % 50 == 0 or i + 1 == protocol.steps:
                    last = np.asarray(jax.device_get(losses[-50:]), np.float64)
                    if not np.all(np.isfinite(last)):
                        raise NaNLossError(f"{label}: the training loss became non-finite; "
                                           "stopping; the last good checkpoint is kept")
                    rate = (i + 1) * protocol.batch_size / (time.perf_counter() - t0)
                    bar.update(i + 1, f"loss {last[-1]:.2f} {rate:,.0f} img/s")
        return state, float(np.mean(np.asarray(jax.device_get(losses[-50:]), np.float64)))

    def measure(params, params0, k, synth, gen, label):
        e, iw = _vae_eval(k, params, cfg, test_x, protocol.n_importance)
        probe, z, pred = (np.asarray(a) for a in _probe(
            jax.random.fold_in(k, 1), params, params0, cfg, protocol.n_probe, *clf))
        z = z.astype(np.float64)
        hist = np.bincount(pred, minlength=10)
        pk = hist[hist > 0] / hist.sum()
        if out is not None:
            save_image_grid(out / "samples" / f"{label}_gen{gen}.png", probe[:64])
        rec = dict(test_elbo=float(e), test_iwae=float(iw),
                   latent_spread=float(np.sqrt(z.var(axis=0).mean())),
                   pixel_var=float(probe.astype(np.float64).var(axis=0).mean()),
                   class_hist=hist.tolist(), class_entropy=float(-(pk * np.log(pk)).sum()),
                   synthetic_pixel_mean=None if synth is None else float(synth.mean()))
        return probe[:64].astype(np.float32), rec

    meta_keys = ("protocol", "data", "n_train", "key")
    g0 = None if ckpt is None else ckpt / "gen0.npz"
    loaded = _resume_from(g0, resume, meta, lambda: p_init, meta_keys)
    if loaded is not None:
        params0, m = loaded
        rec0 = m["records"][0]
        with np.load(ckpt / "samples_gen0.npz") as z:
            grid0 = z["images"]
    else:
        t0 = time.perf_counter()
        state0, loss = train(k_gen0, human, "gen 0 train")
        params0 = state0.params
        grid0, m0 = measure(params0, params0, k_eval, None, 0, "human")
        rec0 = dict(generation=0, train_loss=loss, **m0, seconds=time.perf_counter() - t0)
        if ckpt is not None:
            save_npz(ckpt / "samples_gen0.npz", dict(images=grid0))
            save_checkpoint(g0, params0, {**meta, "records": [rec0]})

    records, samples = {}, {}
    for arm in arms:
        k_arm = jax.random.fold_in(k_arms, arm.key_id)
        recs, grids, pool, params, start = [rec0], [grid0], [human], params0, 1
        latest = None if ckpt is None else ckpt / arm.name / "latest.npz"
        loaded = _resume_from(latest, resume, meta, lambda: p_init, meta_keys)
        if loaded is not None:
            params, m = loaded
            start, recs = m["generation"] + 1, m["records"]
            for g in range(1, start):
                with np.load(ckpt / arm.name / f"samples_gen{g}.npz") as z:
                    grids.append(z["images"])
            if arm.accumulate:
                for g in range(1, start):
                    with np.load(ckpt / arm.name / f"synthetic_gen{g}.npz") as z:
                        pool.append(z["images"])
        for g in range(start, protocol.n_generations + 1):
            t0 = time.perf_counter()
            k_samp, k_perm, k_train, k_meas = jax.random.split(jax.random.fold_in(k_arm, g), 4)
            n_h = 0 if arm.accumulate else int(round(arm.alpha * n))
            synth = np.asarray(_decode_jit(k_samp, params, cfg, n - n_h), np.float32)
            if arm.accumulate:
                pool.append(synth)
                images = np.concatenate(pool)
            else:
                keep = np.asarray(jax.random.permutation(k_perm, n))[:n_h]
                images = np.concatenate([human[keep], synth])
            state, loss = train(k_train, images, f"{arm.name} gen {g} train")
            params = state.params
            grid, mg = measure(params, params0, k_meas, synth, g, arm.name)
            grids.append(grid)
            recs.append(dict(generation=g, train_loss=loss, train_images=len(images),
                             human_images=n_h + (n if arm.accumulate else 0), **mg,
                             seconds=time.perf_counter() - t0))
            if ckpt is not None:
                save_npz(ckpt / arm.name / f"samples_gen{g}.npz", dict(images=grid))
                if arm.accumulate:
                    save_npz(ckpt / arm.name / f"synthetic_gen{g}.npz", dict(images=synth))
                save_checkpoint(latest, params, {**meta, "generation": g, "records": recs})
        records[arm.name] = recs
        samples[arm.name] = grids
    return VAERun(records, samples)
