"""Numeric hyperparameters as traced inputs: one compiled program sweeps them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_config import tiny

from jaxmb import hparams as hparams_lib
from jaxmb.config import ConfigError
from jaxmb.train import make_train

LR = "agent.optim.learning_rate"
DISCOUNT = "agent.loss.discount"
VALUE_WEIGHT = "agent.loss.weights.value"


def test_sweepable_keys_are_numeric_and_not_structural():
    keys = hparams_lib.sweepable_keys(tiny("agent.loss.weights.terminal=0"))
    for key in (LR, DISCOUNT, VALUE_WEIGHT, "agent.search.dirichlet_alpha"):
        assert key in keys
    for key in (
        "agent.search.num_simulations",
        "agent.loss.unroll_steps",
        "agent.network.latent_dim",
        "agent.loss.weights.terminal",  # weight 0 in the base: not in the program
    ):
        assert key not in keys


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("agent.search.num_simulations", "structural"),
        ("agent.optim.learning_rat", "did you mean 'agent.optim.learning_rate'"),
        ("agent.loss.weights.terminal", "weight 0"),
    ],
)
def test_keys_that_cannot_be_swept_are_named(key, says):
    config = tiny("agent.loss.weights.terminal=0")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        hparams_lib.check_keys(config, [key])
    assert says in str(err.value)
    train = make_train(config)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        jax.eval_shape(train, jax.random.key(0), {key: 1.0})


def test_values_are_checked_like_overrides():
    config = tiny()
    hparams_lib.check_values(config, {DISCOUNT: [0.9, 1.0]})
    with pytest.raises(ConfigError, match="agent.loss.discount"):
        hparams_lib.check_values(config, {DISCOUNT: [0.9, 1.5]})


def test_substitute_replaces_only_the_named_leaves():
    config = tiny()
    new = hparams_lib.substitute(config, {LR: 0.5, VALUE_WEIGHT: 2.0})
    assert new.agent.optim.learning_rate == 0.5
    assert new.agent.loss.weights == {**config.agent.loss.weights, "value": 2.0}
    # The original is untouched.
    assert config.agent.optim.learning_rate != 0.5
    assert config.agent.loss.weights["value"] != 2.0


@pytest.fixture(scope="module")
def runs():
    """The TINY program three ways: plain; vmapped over (key, hparams); seed-batched with
    hparams. Member 0's hparams equal the config's own values."""
    config = tiny()
    keys = jax.random.split(jax.random.key(1), 2)
    base = {
        LR: config.agent.optim.learning_rate,
        DISCOUNT: config.agent.loss.discount,
        VALUE_WEIGHT: config.agent.loss.weights["value"],
    }
    sweep = {
        k: jnp.array([v, v * (0.5 if k != LR else 10.0)], jnp.float32) for k, v in base.items()
    }
    plain = jax.jit(make_train(config))(keys[0])[1]
    vmapped = jax.jit(jax.vmap(make_train(config)))(keys, sweep)[1]
    batched = jax.jit(make_train(config, num_seeds=2))(keys, sweep)[1]
    return plain, vmapped, batched


def _close(a, b, **kw):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5, **kw)


def test_hparams_equal_to_the_config_reproduce_the_plain_program(runs):
    plain, vmapped, batched = runs
    for name in ("loss", "grad_norm", "eval/episode_return", "train/episode_return"):
        _close(vmapped[name][0], plain[name], err_msg=name, equal_nan=True)
        _close(batched[name][0], plain[name], err_msg=name, equal_nan=True)


def test_each_member_trains_with_its_own_hparams(runs):
    _, vmapped, batched = runs
    loss = np.asarray(vmapped["loss"])
    learning = np.isfinite(loss[0])
    # A 10x learning rate, half the discount and half the value weight: another run.
    assert not np.allclose(loss[0, learning], loss[1, learning])
    # The seed-batched program (real branches) and the vmapped one (selects) agree.
    for name in ("loss", "grad_norm", "eval/episode_return"):
        _close(batched[name], vmapped[name], err_msg=name, equal_nan=True)


def test_hparams_shapes_are_checked():
    config = tiny()
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(ValueError, match=r"\[2\] arrays"):
        jax.eval_shape(make_train(config, num_seeds=2), keys, {LR: 1e-3})
    with pytest.raises(ValueError, match="scalars"):
        jax.eval_shape(make_train(config), keys[0], {LR: jnp.ones(2)})
