"""docs/extending.md's examples, run as written: a registered criterion and optimizer work where
the built-in ones do, and do what the page says. The catalogs are restored afterwards."""

import re
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxprune
from jaxprune import engines, masks, model, optimizers
from jaxprune.state import INIT_STREAM, MASK_STREAM

PAGE = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


@pytest.fixture
def catalogs():
    """The three catalogs as they are, restored after the test (registration lasts a process)."""
    saved = [(catalog, dict(catalog)) for catalog in
             (masks.CRITERIA, optimizers.OPTIMIZERS, engines.ENGINES)]  # fmt: skip
    yield
    for catalog, entries in saved:
        catalog.clear()
        catalog.update(entries)


def example(heading: str) -> dict:
    """Run the python block under `heading` of the page; returns its namespace."""
    section = PAGE.read_text().split(f"## {heading}\n")[1].split("\n## ")[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    namespace: dict = {}
    exec(compile(code, f"{PAGE}:{heading}", "exec"), namespace)
    return namespace


@pytest.mark.slow  # trains a Config of its own
def test_a_registered_criterion_keeps_the_smallest_weights(catalogs):
    found = example("A mask criterion")
    config, state = found["config"], found["state"]
    assert "reverse_magnitude" in jaxprune.engines.names("mask")
    # The run's mask is the criterion's, from its initial weights (seed 0's init draws).
    key = jax.random.key(0)
    w0 = model.init_weights(config, jaxprune.Params(), jax.random.fold_in(key, INIT_STREAM))[0]
    uniforms = masks.mask_uniforms(config, jax.random.fold_in(key, MASK_STREAM))
    half = jaxprune.Params(prune_frac=0.5)
    reverse = masks.prune_mask(config, half, uniforms, w0, None, None)
    np.testing.assert_array_equal(state.mask, reverse)
    # Each neuron keeps exactly half its d weights, every kept |w0| no larger than every
    # removed one: the complement of magnitude pruning's mask at p = 0.5 with d even.
    mask, w0 = np.asarray(reverse), np.abs(np.asarray(w0))
    assert (mask.sum(-1) == config.dim // 2).all()
    assert (np.where(mask > 0, w0, -np.inf).max(-1) <= np.where(mask > 0, np.inf, w0).min(-1)).all()
    magnitude = masks.prune_mask(config.replace(mask="magnitude"), half, uniforms, w0, None, None)
    np.testing.assert_array_equal(mask, 1 - np.asarray(magnitude))


@pytest.mark.slow  # three Configs of its own
def test_a_registered_optimizer_trains_on_both_engines_alike(catalogs):
    found = example("An optimizer")
    dense, gram = found["dense"], found["gram"]
    assert dense.attrs["engines"] == [{"engine": "dense"}]
    assert gram.attrs["engines"] == [{"engine": "gram"}]
    for column in ("train_loss", "test_loss"):
        np.testing.assert_allclose(gram[column], dense[column], rtol=1e-4, err_msg=column)
    # It moved the weights (momentum's first steps differ from plain GD's).
    gd = jaxprune.train(found["config"].replace(optimizer="gd"), jaxprune.Params(lr=0.5), seed=0)
    assert not np.allclose(dense.train_loss.iloc[-1], gd.train_loss.iloc[-1], rtol=1e-3)
    # Unregistered, the name is refused again, as any unknown name.
    optimizers.OPTIMIZERS.pop("nesterov")
    with pytest.raises(ValueError, match="Config.optimizer = 'nesterov' is invalid"):
        jaxprune.Config(optimizer="nesterov")
