"""Every public callable of jaxcollapse has a runnable ``>>>`` example in its docstring.

The examples themselves run as doctests (``pytest --doctest-modules`` over
``jaxcollapse/``); this test makes sure none is missing. Public means: listed in a
module's ``__all__``, or, for a module without one, defined there under a name
without a leading underscore.
"""

import importlib
import inspect

import pytest

MODULES = [
    "jaxcollapse",
    "jaxcollapse.simulate",
    "jaxcollapse.regimes",
    "jaxcollapse.metrics",
    "jaxcollapse.kernels",
    "jaxcollapse.random",
    "jaxcollapse.decompose",
    "jaxcollapse.learned",
    "jaxcollapse.io",
    "jaxcollapse.data",
    "jaxcollapse.models",
    "jaxcollapse.families",
    "jaxcollapse.families.base",
    "jaxcollapse.families.gaussian",
    "jaxcollapse.families.categorical",
    "jaxcollapse.families.regression",
    "jaxcollapse.families.gmm",
    "jaxcollapse.families.kde",
    "jaxcollapse.theory",
    "jaxcollapse.theory.gaussian",
    "jaxcollapse.theory.discrete",
    "jaxcollapse.theory.regression",
    "jaxcollapse.theory.kde",
    "jaxcollapse.cli",
]


def public_callables(modname: str) -> dict[str, object]:
    """name -> object of the public callables (functions and classes) of a module."""
    mod = importlib.import_module(modname)
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n, o in vars(mod).items()
                 if not n.startswith("_") and getattr(o, "__module__", None) == modname]
    return {n: getattr(mod, n) for n in names
            if callable(getattr(mod, n)) and not inspect.ismodule(getattr(mod, n))}


def test_the_walk_finds_the_api():
    found = public_callables("jaxcollapse")
    assert {"simulate", "Gaussian", "mix"} <= set(found)
    assert "w2sq_mean" in public_callables("jaxcollapse.theory.gaussian")
    assert "_report" not in public_callables("jaxcollapse.cli")


@pytest.mark.parametrize("modname", MODULES)
def test_every_public_callable_has_an_example(modname):
    missing = [f"{modname}.{n}" for n, obj in public_callables(modname).items()
               if ">>>" not in (inspect.getdoc(obj) or "")]
    assert not missing, f"public callables without a '>>>' example: {missing}"
