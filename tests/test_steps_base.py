"""jaxcollapse.steps._base: whether a step acts through its law, traced once a shape."""

import dataclasses

import jax
import jax.numpy as jnp

import jaxcollapse as jc
from jaxcollapse import steps
from jaxcollapse.steps import _base


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class _Counting(_base.Step):
    """Scales a Gaussian's covariance; counts how often its law is traced."""

    lam: jax.Array
    calls: list = dataclasses.field(metadata=dict(static=True))

    def __hash__(self):  # the static field is a list: hash the step by its identity
        return id(self.calls)

    def law(self, family, params):
        self.calls.append(1)
        if not isinstance(family, jc.Gaussian):
            return None
        return params._replace(cov=params.cov * self.lam)


def test_has_law_is_traced_once_per_structure_and_shapes():
    fam = jc.Gaussian(dim=1)
    calls = []
    step = _Counting(jnp.asarray(0.5), calls)
    assert _base.has_law(step, fam, fam.params())
    # new leaf values, same shapes: no new trace
    assert _base.has_law(_Counting(jnp.asarray(0.9), calls), fam, fam.params(mean=[1.0]))
    assert len(calls) == 1
    # another family (or other shapes) is traced again and answers for itself
    assert not _base.has_law(step, jc.Categorical(3), jc.Categorical(3).params())
    assert _base.has_law(step, jc.Gaussian(dim=2), jc.Gaussian(dim=2).params())
    assert len(calls) == 3
    # a select step on points has no law; on a Categorical it has one
    cur = steps.curate(lambda x: -jnp.sum(x ** 2), 4)
    assert not _base.has_law(cur, fam, fam.params())
    assert _base.has_law(steps.curate(jnp.arange(3.0), 4), jc.Categorical(3),
                         jc.Categorical(3).params())
