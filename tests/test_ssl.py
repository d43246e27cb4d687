"""The self-supervised loss terms (jaxmb/losses/ssl.py): their values on hand-made inputs, no
gradient into the target side, parameters only for active terms, and the kinds swept in one
compiled program."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_config import tiny

import jaxmb
from jaxmb import envs
from jaxmb.agents.muzero import MuZero
from jaxmb.config import ConfigError
from jaxmb.losses import ssl

SSL = ("reconstruction", "spr", "contrastive")


def test_a_perfect_decoder_has_reconstruction_loss_zero():
    obs = jax.random.uniform(jax.random.key(0), (3, 4, 5, 5, 2))
    assert float(jnp.max(ssl.reconstruction_error(obs, obs, "l2", 3))) == 0.0
    # Integer images are compared after /255, as the encoder reads them.
    pixels = jax.random.randint(jax.random.key(1), (2, 6, 6, 3), 0, 256).astype(jnp.uint8)
    exact = pixels.astype(jnp.float32) / 255.0
    assert float(jnp.max(ssl.reconstruction_error(exact, pixels, "l2", 3))) == 0.0
    # Cross-entropy: binary planes and confident logits of the right sign -> ~0; wrong sign
    # -> large.
    planes = (jax.random.uniform(jax.random.key(2), (2, 3, 7, 7, 4)) > 0.5).astype(jnp.float32)
    logits = 30.0 * (2 * planes - 1)
    assert float(jnp.max(ssl.reconstruction_error(logits, planes, "cross_entropy", 3))) < 1e-6
    assert float(jnp.min(ssl.reconstruction_error(-logits, planes, "cross_entropy", 3))) > 10
    err = ssl.reconstruction_error(obs + 0.5, obs, "l2", 3)
    np.testing.assert_allclose(err, 0.25, rtol=1e-6)


def test_spr_is_at_its_minimum_for_identical_embeddings():
    x = jax.random.normal(jax.random.key(0), (4, 5, 16))
    np.testing.assert_allclose(ssl.spr_error(x, x), 0.0, atol=1e-6)
    np.testing.assert_allclose(ssl.spr_error(x, 3.0 * x), 0.0, atol=1e-6)  # scale-free
    np.testing.assert_allclose(ssl.spr_error(x, -x), 4.0, atol=1e-6)
    other = jax.random.normal(jax.random.key(1), (4, 5, 16))
    assert float(jnp.min(ssl.spr_error(x, other))) > 0.0


@pytest.mark.parametrize("negatives", ["batch", "batch_and_time"])
def test_contrastive_loss_with_a_matching_positive_and_distant_negatives(negatives):
    # 3 windows x 4 steps, each with its own orthogonal direction: the positive is the
    # matching key, every negative is orthogonal to the query.
    keys = jnp.eye(12).reshape(3, 4, 12)
    mask = jnp.ones((3, 4))
    sharp = ssl.info_nce(keys, keys, mask, 0.01, negatives)
    assert float(jnp.max(sharp)) < 1e-6
    # With every key the same, each candidate is as likely: -log(1 / candidates).
    same = jnp.ones((3, 4, 12))
    candidates = 3 if negatives == "batch" else 12
    np.testing.assert_allclose(ssl.info_nce(same, same, mask, 0.1, negatives), np.log(candidates))
    # A masked key is no candidate: with window 2 masked, 2 (or 8) remain.
    mask = mask.at[2].set(0.0)
    candidates = 2 if negatives == "batch" else 8
    out = ssl.info_nce(same, same, mask, 0.1, negatives)
    np.testing.assert_allclose(out[:2], np.log(candidates), rtol=1e-6)


def _agent(*overrides):
    config = tiny(*overrides)
    env, params = envs.make(config.env.id)
    return config, MuZero.from_config(config, env, params)


def _batch(config, key):
    """A replayed batch of B windows with random observations and actions, no episode end."""
    b, length = (
        config.replay.batch_size,
        config.agent.loss.unroll_steps + config.agent.loss.td_steps + 1,
    )
    k1, k2 = jax.random.split(key)
    return {
        "obs": jax.random.normal(k1, (b, length, 4)),
        "action": jax.random.randint(k2, (b, length), 0, 2),
        "reward": jnp.ones((b, length)),
        "terminated": jnp.zeros((b, length), bool),
        "truncated": jnp.zeros((b, length), bool),
        "action_mask": jnp.ones((b, length, 2), bool),
        "final_value": jnp.zeros((b, length)),
        "policy": jnp.full((b, length, 2), 0.5),
        "value": jnp.zeros((b, length)),
        "weight": jnp.ones((b,)),
    }


@pytest.mark.parametrize("target", ["ema", "target_network"])
def test_no_gradient_reaches_the_target_side(target):
    weights = [f"agent.loss.weights.{name}=1.0" for name in SSL]
    config, agent = _agent(*weights, f"agent.ssl.target={target}")
    state = agent.init(jax.random.key(0))
    batch = _batch(config, jax.random.key(1))
    side = "ema_params" if target == "ema" else "target_params"
    assert (state.ema_params is not None) == (target == "ema")

    def loss_of(side_params, params):
        targets = agent.targets(state.replace(**{side: side_params}), batch, jax.random.key(2))
        targets.pop("simulations")
        return agent.loss(params, targets, batch)[0]

    grads = jax.jit(jax.grad(loss_of, argnums=(0, 1)))
    to_side, to_online = grads(getattr(state, side), state.params)
    for leaf in jax.tree.leaves(to_side):
        assert float(jnp.max(jnp.abs(leaf))) == 0.0
    # The online side does learn: every term's own parameters and the encoder get gradient.
    for name in SSL:
        norm = sum(float(jnp.sum(jnp.abs(g))) for g in jax.tree.leaves(to_online["terms"][name]))
        assert norm > 0.0, name
    assert float(jnp.sum(jnp.abs(jax.tree.leaves(to_online["params"]["encoder"])[0]))) > 0


def test_weight_zero_removes_a_term_and_its_parameters_and_the_ema():
    _, plain = _agent()
    state = plain.init(jax.random.key(0))
    assert "terms" not in state.params and state.ema_params is None
    _, only = _agent("agent.loss.weights.spr=0.5")
    state = only.init(jax.random.key(0))
    assert sorted(state.params["terms"]) == ["spr"]
    assert sorted(state.params["terms"]["spr"]) == ["prediction", "projection"]
    # The network's own parameters are drawn as without the term.
    same = plain.init(jax.random.key(0)).params["params"]
    for a, b in zip(jax.tree.leaves(same), jax.tree.leaves(state.params["params"]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_moving_average_follows_the_online_parameters():
    config, agent = _agent("agent.loss.weights.spr=1.0", "agent.ssl.ema_decay=0.9")
    state = agent.init(jax.random.key(0))
    new, metrics = jax.jit(agent.update)(
        state, _batch(config, jax.random.key(1)), jax.random.key(2)
    )
    assert np.isfinite(float(metrics["loss/spr"]))
    for e0, p1, e1 in zip(
        jax.tree.leaves(state.ema_params),
        jax.tree.leaves(new.params),
        jax.tree.leaves(new.ema_params),
        strict=True,
    ):
        np.testing.assert_allclose(e1, 0.9 * e0 + 0.1 * p1, rtol=1e-5, atol=1e-7)


def test_an_agent_without_term_parameters_refuses_an_ssl_term():
    with pytest.raises(ConfigError, match="agent.loss.weights.spr"):
        tiny("agent.kind=q_learning", "agent.loss.weights={q: 1.0, spr: 1.0}")


def test_the_ssl_kinds_and_seeds_train_in_one_compiled_program():
    # All three terms in the base config; each member keeps one (or none) by its weights.
    config = tiny(*(f"agent.loss.weights.{name}=1.0" for name in SSL))
    train = jaxmb.make_train(config)
    kinds = ["none", *SSL]
    hparams = {
        f"agent.loss.weights.{name}": jnp.asarray([float(k == name) for k in kinds]) for name in SSL
    }
    keys = jnp.stack([jax.random.key(0)] * len(kinds))
    _, metrics = jax.jit(jax.vmap(train))(keys, hparams)
    assert np.isfinite(np.asarray(metrics["loss"])[:, 1:]).all()
    # The same seed everywhere: the members differ only through the SSL term they train, which
    # moves the shared encoder and so MuZero's own (unweighted) value loss.
    value = np.asarray(metrics["loss/value"])
    for m in range(1, len(kinds)):
        assert not np.allclose(value[0, 2:], value[m, 2:]), kinds[m]
    for name in SSL:
        assert np.isfinite(np.asarray(metrics[f"loss/{name}"])[:, 1:]).all()
