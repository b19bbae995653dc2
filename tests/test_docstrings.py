"""Every public callable of jaxcollapse has a runnable ``>>>`` example in its docstring.

The examples themselves run as doctests (``pytest --doctest-modules`` over
``jaxcollapse/``); this test makes sure none is missing. Public means: listed in a
module's ``__all__``, or, for a module without one, defined there under a name
without a leading underscore; every non-private module of the package is walked.
"""

import importlib
import inspect
import pkgutil

import pytest

import jaxcollapse

# Every module whose dotted path has no private part, except the command-line
# runners of jaxcollapse/experiments (``run(args)`` plumbing behind ``jaxcollapse run``).
MODULES = ["jaxcollapse"] + sorted(
    m.name for m in pkgutil.walk_packages(jaxcollapse.__path__, "jaxcollapse.")
    if not any(part.startswith("_") for part in m.name.split("."))
    and not m.name.startswith("jaxcollapse.experiments"))


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
    assert {"jaxcollapse.theory.gaussian", "jaxcollapse.metrics", "jaxcollapse.models.vae",
            "jaxcollapse.cli"} <= set(MODULES)
    found = public_callables("jaxcollapse")
    assert {"simulate", "Gaussian", "mix"} <= set(found)
    assert "w2sq_mean" in public_callables("jaxcollapse.theory.gaussian")
    assert "_report" not in public_callables("jaxcollapse.cli")


@pytest.mark.parametrize("modname", MODULES)
def test_every_public_callable_has_an_example(modname):
    missing = [f"{modname}.{n}" for n, obj in public_callables(modname).items()
               if ">>>" not in (inspect.getdoc(obj) or "")]
    assert not missing, f"public callables without a '>>>' example: {missing}"
