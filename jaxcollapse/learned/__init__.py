"""Recursive training of learned generators (a transformer LM, a VAE, your model).

One driver, :func:`run_recursive`, runs the generation loop for any model that
implements the small :class:`Generator` protocol (train, generate, evaluate);
the language model (:func:`run_lm`) and the VAE (:func:`run_vae`) are two such
plug-ins. Arms are the regime objects of :func:`jaxcollapse.simulate`
(``jc.replace()``, ``jc.mix(alpha, source)``, ``jc.accumulate()``); the original
:func:`make_arms` / :class:`Arm` encoding is kept as an alias. See
``docs/learned.md`` for plugging in a model of your own.

References:
    Shumailov et al., Nature 631 (2024), THEORY.md section 8; Gerstgrasser et al.,
    arXiv 2404.01413 (accumulate).
"""

from jaxcollapse.learned.arms import Arm, RegimeArm, as_arms, make_arms, regime_name
from jaxcollapse.learned.decoding import Decoding, decoding_arms, parse_decoding
from jaxcollapse.learned.driver import (
    ArrayGenerator,
    FineTuner,
    Generation,
    Generator,
    NaNLossError,
    RecursiveRun,
    fit_loop,
    run_recursive,
    training_mesh,
)
from jaxcollapse.learned.images import image_grid, save_image_grid
from jaxcollapse.learned.lm import (
    DECODINGS,
    LanguageModel,
    LMProtocol,
    LMRun,
    _compiled,  # noqa: F401  (used by the CLI's base loader)
    format_table,
    run_lm,
    unigram_stats,
)
from jaxcollapse.learned.vae import ImageVAE, VAEProtocol, VAERun, run_vae

_training_mesh = training_mesh  # the old private name (tests/test_sharding_data.py)

__all__ = [
    "DECODINGS", "Arm", "ArrayGenerator", "Decoding", "FineTuner", "Generation", "Generator",
    "ImageVAE", "LMProtocol", "LMRun", "LanguageModel", "NaNLossError", "RecursiveRun", "RegimeArm",
    "VAEProtocol", "VAERun", "as_arms", "decoding_arms", "fit_loop", "format_table",
    "image_grid", "make_arms", "parse_decoding", "regime_name", "run_lm", "run_recursive",
    "run_vae", "save_image_grid", "training_mesh", "unigram_stats",
]
