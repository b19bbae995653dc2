"""The seed study's recursive protocol for a transformer language model, as a
plug-in of :func:`~jaxcollapse.learned.driver.run_recursive`.

Generation 0 trains on the human training text. Generation n >= 1 trains, from
the *same* initialisation, on text made by generation n - 1: the human training
stream is cut into ``prompt_len``-token blocks and each block is continued for
``gen_len`` tokens (sampling or beam search), so the synthetic set is as large as
the human one. Arms (THEORY.md section 1) are regimes:

- ``mix(a, "fresh")`` (``alpha=a``): a random fraction ``a`` of the blocks (fresh
  each generation) is kept as human text, the others are replaced by
  continuations (``a = 0`` is the replace regime, ``a = 0.1`` the seed study's
  mitigation); ``mix(a, "fixed")`` keeps the same blocks every generation;
- ``accumulate()``: the pool grows: human text plus every synthetic set so far.

Each generation reports test/validation perplexity and next-token accuracy on the
human splits, the perplexities of its synthetic training sequences under the
generation-0 model (collapse shows as lower perplexity with a long tail) beside
held-out human text scored the same way, and unigram statistics of the synthetic
text against the human unigram distribution (types that vanished, the human mass
they carried, a fitted Zipf exponent; THEORY.md section 4). After every
generation a checkpoint (parameters, optimiser state, key, metrics so far) is
written; ``resume=True`` continues an interrupted run and gives the same result
as an uninterrupted one.

References:
    Shumailov et al., Nature 631 (2024), THEORY.md section 8; Gerstgrasser et al.,
    arXiv 2404.01413 (accumulate); Dohmatob et al., A Tale of Tails, ICML 2024
    (lost tails, THEORY.md section 4).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcollapse._progress import Progress
from jaxcollapse.data.wikitext import UNK, TextCorpus
from jaxcollapse.io import save_npz
from jaxcollapse.learned._checks import check_optimiser, check_protocol_ints, check_run_key
from jaxcollapse.learned.arms import RegimeArm
from jaxcollapse.learned.decoding import DECODINGS, Decoding
from jaxcollapse.learned.driver import Generation, fit_loop, run_recursive, training_mesh
from jaxcollapse.learned.lm_text import format_table, unigram_stats  # noqa: F401
from jaxcollapse.models.accuracy import accuracy_stats, frequency_bands, scored_predictions
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

TRAININGS = ("scratch", "finetune")

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
        training: ``"scratch"`` (default): every generation trains a freshly
            initialised model (or ``base_params``) for ``steps`` steps;
            ``"finetune"``: the paper's protocol: generation 0 trains the base model
            on the human split, and every later generation fine-tunes that one
            base model on its own training set for ``finetune_steps`` steps.
        finetune_steps: optimiser steps of each fine-tuning generation (``None``:
            ``steps``); each record states the epochs they make
            (``epochs = steps x batch_size x seq_len / train_tokens``).

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
    training: str = "scratch"
    finetune_steps: int | None = None

    def __post_init__(self):
        c = self.model
        check_protocol_ints(self, ("n_generations",), minimum=0)
        check_protocol_ints(self, ("steps", "batch_size", "seq_len", "prompt_len", "gen_len",
                                   "gen_batch", "n_score", "n_beams"))
        check_protocol_ints(self, ("warmup_steps", "top_k"), minimum=0)
        if self.eval_tokens is not None:
            # evaluation windows predict from the second token on: at least 2
            check_protocol_ints(self, ("eval_tokens",), minimum=2)
        check_optimiser(self.learning_rate, self.weight_decay)
        if self.seq_len > c.max_len:
            raise ValueError(f"seq_len {self.seq_len} exceeds the model's context "
                             f"max_len={c.max_len}")
        if self.prompt_len + self.gen_len > c.max_len:
            raise ValueError(f"prompt_len {self.prompt_len} + gen_len {self.gen_len} exceeds "
                             f"the model's context max_len={c.max_len}")
        if self.decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {DECODINGS}; got {self.decoding!r}")
        self.default_decoding  # noqa: B018  (validates the decoding fields)
        self._check_training()
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps={self.steps}]; "
                             f"got {self.warmup_steps}")

    def _check_training(self) -> None:
        if self.training not in TRAININGS:
            raise ValueError(f"training must be one of {TRAININGS}; got {self.training!r}")
        f = self.finetune_steps
        if f is not None and (isinstance(f, bool) or not isinstance(f, int) or f < 1):
            raise ValueError(f"finetune_steps must be None or a positive integer; got {f!r}")

    @property
    def generation_steps(self) -> int:
        """Optimiser steps of generations 1, 2, ... (``steps`` when training from
        scratch, ``finetune_steps`` or ``steps`` when fine-tuning)."""
        if self.training == "finetune" and self.finetune_steps is not None:
            return self.finetune_steps
        return self.steps

    @property
    def default_decoding(self) -> Decoding:
        """The decoding of arms that do not set their own."""
        return Decoding(self.decoding, self.temperature, self.top_k, self.top_p,
                        self.repetition_penalty, self.n_beams)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["model"] = dataclasses.asdict(self.model)
        return d


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



@functools.lru_cache(maxsize=8)
def _compiled(model: TransformerConfig, learning_rate: float, steps: int, warmup_steps: int,
              weight_decay: float, mesh=None):
    # One optimiser and one jitted step per training setup, shared by every seed,
    # arm, generation and resumed call (a new jit object would compile again).
    tx = make_optimizer(learning_rate, total_steps=steps, warmup_steps=warmup_steps,
                        weight_decay=weight_decay)
    return tx, make_train_step(model, tx, mesh=mesh)



def _generate(key, protocol: LMProtocol, params, prompts: np.ndarray, label: str,
              progress: bool, dec: Decoding) -> np.ndarray:
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
            if dec.method == "beam":
                toks = beam_search(params, protocol.model, chunk, protocol.gen_len,
                                   n_beams=dec.n_beams,
                                   repetition_penalty=dec.repetition_penalty)[0]
            else:
                toks = sample(keys[j], params, protocol.model, chunk, protocol.gen_len,
                              temperature=dec.temperature, top_k=dec.top_k,
                              top_p=dec.top_p, repetition_penalty=dec.repetition_penalty)
            out[s:s + m] = np.asarray(toks)[:m]
            bar.update(min(s + b, n) * protocol.gen_len)
    return out


def _evaluate(params, protocol: LMProtocol, corpus: TextCorpus, bands: np.ndarray) -> dict:
    cut = (lambda x: x) if protocol.eval_tokens is None else \
        (lambda x: x[: protocol.eval_tokens])
    cfg = protocol.model
    v = evaluate(params, cfg, cut(corpus.valid), seq_len=protocol.seq_len)
    # the test split's perplexity and its accuracies from one forward pass; accuracy
    # that measures something (issue 18): known targets, <unk> shares, bands
    t, *pred = scored_predictions(params, cfg, cut(corpus.test), seq_len=protocol.seq_len)
    acc = accuracy_stats(*pred, unk_id=corpus.vocab.stoi.get(UNK), bands=bands)
    return dict(valid_ppl=v.perplexity, valid_acc=v.accuracy, test_ppl=t.perplexity,
                test_acc=t.accuracy, test_tokens=t.n_tokens, test_accuracy=acc)


class LanguageModel:
    """The transformer language model as a :class:`~jaxcollapse.learned.Generator`.

    Units are the ``prompt_len``-token blocks of the human training stream; a
    synthetic unit is the ``gen_len``-token continuation of a replaced block.

    Example:
        >>> import numpy as np
        >>> from jaxcollapse.data import build_vocab, TextCorpus
        >>> from jaxcollapse.models import preset
        >>> toks = (np.arange(400) % 40).astype(np.int32)
        >>> corpus = TextCorpus(toks, toks[:64], toks[:64],
        ...                     build_vocab([[str(i) for i in range(40)]]), "toy")
        >>> lm = LanguageModel(corpus, LMProtocol(preset("tiny", 40, max_len=16), seq_len=16,
        ...                                       prompt_len=8, gen_len=8))
        >>> lm.human().shape
        (50, 8)
    """

    key_order = ("perm", "sample", "train", "mix")
    save_synthetic = True

    def __init__(self, corpus: TextCorpus, protocol: LMProtocol, *, base_params=None,
                 mesh=None):
        cfg = protocol.model
        if len(corpus.vocab) != cfg.vocab_size:
            raise ValueError(f"the model's vocab_size {cfg.vocab_size} differs from the "
                             f"corpus vocabulary ({len(corpus.vocab)} types)")
        n_blocks = len(corpus.train) // protocol.prompt_len
        if n_blocks < 2 or len(corpus.train) < protocol.seq_len + 1:
            raise ValueError(f"the training text has {len(corpus.train)} tokens: too short "
                             f"for prompt_len={protocol.prompt_len}, "
                             f"seq_len={protocol.seq_len}")
        self.corpus, self.protocol, self.base_params = corpus, protocol, base_params
        self.stream = np.asarray(corpus.train)
        self.blocks = self.stream[: n_blocks * protocol.prompt_len].reshape(
            n_blocks, protocol.prompt_len)
        self.counts = np.bincount(self.stream, minlength=cfg.vocab_size)
        self.bands = frequency_bands(self.counts)
        self.tx, self.step = _compiled(cfg, protocol.learning_rate, protocol.steps,
                                       protocol.warmup_steps, protocol.weight_decay, mesh)
        n_ft = protocol.generation_steps
        self.ft_tx, self.ft_step = _compiled(cfg, protocol.learning_rate, n_ft,
                                             min(protocol.warmup_steps, n_ft),
                                             protocol.weight_decay, mesh)

    def human(self) -> np.ndarray:
        return self.blocks

    def meta(self) -> dict:
        proto = self.protocol.to_dict()
        proto.pop("n_generations")  # a run may be resumed with more generations
        return dict(protocol=proto, vocab=self.corpus.vocab.fingerprint,
                    corpus=self.corpus.name, n_train=int(len(self.corpus.train)))

    def init(self, key):
        return init_params(key, self.protocol.model) if self.base_params is None \
            else self.base_params

    def template(self, params) -> TrainState:
        return init_state(jax.random.key(0), self.protocol.model, self.tx, params=params)

    def params_of(self, state: TrainState):
        return state.params

    def train(self, key, stream, params, label, progress):
        return self._fit(key, stream, params, label, progress, self.tx, self.step,
                         self.protocol.steps)

    def finetune(self, key, stream, params, label, progress):
        """Fine-tunes ``params`` (the base model) for ``generation_steps`` steps, with
        its own warm-up and cosine decay (:class:`~jaxcollapse.learned.FineTuner`)."""
        return self._fit(key, stream, params, label, progress, self.ft_tx, self.ft_step,
                         self.protocol.generation_steps)

    def _fit(self, key, stream, params, label, progress, tx, step, n_steps):
        p = self.protocol
        # Copy: the jitted step donates the state, and params is reused every generation.
        state = init_state(key, p.model, tx, params=jax.tree.map(jnp.array, params))
        keys = jax.random.split(key, n_steps)

        def one(i, s):
            return step(s, sample_windows(keys[i], stream, p.batch_size, p.seq_len + 1))

        return fit_loop(one, state, n_steps, label, progress=progress,
                        per_step=p.batch_size * p.seq_len, unit="tok")

    def _epochs(self, generation: int, train_tokens: int) -> dict:
        p = self.protocol
        n = p.steps if generation == 0 else p.generation_steps
        return dict(train_steps=n, epochs=n * p.batch_size * p.seq_len / max(train_tokens, 1))

    def generate(self, key, params, replaced, arm: RegimeArm, label, progress):
        prompts = self.blocks[np.sort(replaced)]
        if not len(prompts):
            return np.zeros((0, self.protocol.gen_len), np.int32)
        dec = arm.setting.get("decoding", self.protocol.default_decoding)
        return _generate(key, self.protocol, params, prompts, label, progress, dec)

    def mix(self, key, kept, synthetic):
        rows = list(self.blocks[np.sort(kept)]) + list(synthetic)
        order = np.asarray(jax.random.permutation(key, len(rows)))
        return np.concatenate([rows[i] for i in order]) if rows else self.stream

    def pool(self, synthetics):
        return np.concatenate([self.stream] + [s.reshape(-1) for s in synthetics])

    def evaluate(self, key, gen: Generation):
        p = self.protocol
        ev = _evaluate(gen.params, p, self.corpus, self.bands)
        if gen.generation == 0:
            return dict(train_tokens=len(self.stream), **self._epochs(0, len(self.stream)),
                        **ev, human=unigram_stats(self.stream, self.counts)), {}
        synth = gen.synthetic
        n_sc = min(p.n_score, len(synth))
        if n_sc:
            prompts = self.blocks[np.sort(gen.replaced)[:n_sc]]
            ppl = sequence_perplexity(gen.params0, p.model,
                                      np.concatenate([prompts, synth[:n_sc]], axis=1),
                                      start=p.prompt_len)
        else:
            ppl = np.zeros(0)
        human_tokens = (len(self.stream) if gen.arm.accumulates
                        else gen.n_human * p.prompt_len)
        rec = dict(train_tokens=int(len(gen.data)), human_tokens=int(human_tokens),
                   **self._epochs(gen.generation, len(gen.data)), **ev,
                   synthetic=unigram_stats(synth, self.counts) if synth.size else None,
                   gen0_ppl_median=float(np.median(ppl)) if ppl.size else None,
                   gen0_ppl_p95=float(np.percentile(ppl, 95)) if ppl.size else None)
        return rec, dict(gen0_ppl=ppl)

    def human_perplexities(self, params0) -> np.ndarray:
        """Held-out human text scored as the synthetic text is (the histograms'
        reference); a deterministic function of ``params0`` and the test split."""
        p = self.protocol
        block = p.prompt_len + p.gen_len
        test = np.asarray(self.corpus.test)
        m = min(p.n_score, len(test) // block)
        return (sequence_perplexity(params0, p.model, test[: m * block].reshape(m, block),
                                    start=p.prompt_len) if m else np.zeros(0))


def run_lm(key: jax.Array, corpus: TextCorpus, protocol: LMProtocol, arms, *,
           out: str | Path | None = None, resume: bool = False, base_params=None,
           progress: bool = False, devices: int | Sequence[jax.Device] | None = None,
           mesh: jax.sharding.Mesh | None = None) -> LMRun:
    """Runs the recursive language-model protocol for one seed.

    Args:
        key: PRNG key (one seed): it fixes the initialisation, the training
            windows, the human blocks kept and the sampled continuations.
        corpus: the human text (:class:`~jaxcollapse.data.TextCorpus`).
        protocol: an :class:`LMProtocol`.
        arms: regimes (``[jc.replace(), jc.mix(0.1, "fresh"), jc.accumulate()]``),
            :class:`~jaxcollapse.learned.RegimeArm`\\ s, or :func:`make_arms`'s arms.
        out: folder for checkpoints and per-sample perplexities (``None``: none).
        resume: continue from the checkpoints in ``out`` (finished generations are
            not redone; the result equals an uninterrupted run).
        base_params: start every generation from these parameters instead of a
            fresh initialisation (a base checkpoint). With
            ``protocol.training="finetune"`` generation 0 fine-tunes them on the
            human split and later generations fine-tune generation 0's model.
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
        >>> from jaxcollapse.learned import make_arms
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
    check_run_key(key)
    if not isinstance(protocol, LMProtocol):
        raise TypeError(f"protocol must be an LMProtocol; got {type(protocol).__name__}")
    if not isinstance(corpus, TextCorpus):
        raise TypeError(f"corpus must be a jaxcollapse.data.TextCorpus (e.g. from "
                        f"jaxcollapse.data.load_wikitext2); got {type(corpus).__name__}")
    lm = LanguageModel(corpus, protocol, base_params=base_params,
                       mesh=training_mesh(devices, mesh, protocol.batch_size))
    run = run_recursive(key, lm, arms, protocol.n_generations, out=out, resume=resume,
                        progress=progress,
                        start="generation0" if protocol.training == "finetune" else "init")
    human_ppl = lm.human_perplexities(run.params0)
    sample_ppl = {a: [x["gen0_ppl"] for x in arts[1:]] for a, arts in run.artifacts.items()}
    if out is not None:
        save_npz(Path(out) / "gen0_perplexities.npz",
                 {"human/test": human_ppl,
                  **{f"{a}/gen{i + 1}": p for a, ps in sample_ppl.items()
                     for i, p in enumerate(ps)}})
    return LMRun(run.records, sample_ppl, human_ppl)
