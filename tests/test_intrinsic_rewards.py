"""The intrinsic rewards of the exploration phase: RND and latent disagreement (jaxmb.rewards)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_config import tiny

import jaxmb.agents
import jaxmb.envs
from jaxmb import configlib, rewards
from jaxmb.agents.muzero import MuZero
from jaxmb.agents.registry import with_kind
from jaxmb.configlib import ConfigError
from jaxmb.envs.wrappers import Wrapper
from jaxmb.rewards.rnd import Moments
from jaxmb.train import make_train

# --------------------------------------------------------------------------- RND


def test_running_moments_match_numpy_over_uneven_chunks():
    values = np.random.default_rng(0).normal(3.0, 2.0, size=(37, 3)).astype(np.float32)
    moments = Moments.zeros((3,))
    for chunk in (values[:1], values[1:20], values[20:]):
        moments = moments.add(jnp.asarray(chunk))
    np.testing.assert_allclose(moments.mean, values.mean(0), rtol=1e-5)
    np.testing.assert_allclose(moments.std, values.std(0), rtol=1e-5)
    assert float(moments.count) == 37
    # A window of 10 over 10 chunks of 5 values: old values weigh as 5 samples, so a jump in
    # the values moves the mean most of the way at once.
    windowed = Moments.zeros(())
    for level in [0.0] * 9 + [10.0]:
        windowed = windowed.add(jnp.full((5,), level), window=10)
    assert float(windowed.count) == 10 and abs(float(windowed.mean) - 5.0) < 1e-5


def _rnd(*overrides):
    return rewards.make(tiny("reward.transform=rnd", *overrides))


def test_rnd_gives_a_state_seen_often_a_smaller_reward_than_a_new_one():
    transform = _rnd("reward.rnd.learning_rate=0.003")
    rng = np.random.default_rng(0)
    often = jnp.asarray([0.5, -1.0, 0.2, 1.5])
    state = transform.init(jax.random.key(0), often)
    # A stream of observations near `often`, then the predictor trained on them.
    stream = often + 0.05 * rng.normal(size=(4, 16, 4)).astype(np.float32)
    state = transform.observe(state, {"obs": jnp.asarray(stream)})
    batch = {"obs": jnp.asarray(stream)}
    update = jax.jit(transform.update)
    for i in range(200):
        state, metrics = update(state, batch, jax.random.key(i))
    state = transform.observe(state, {"obs": jnp.asarray(stream)})  # the std, once trained
    new = jnp.asarray([-2.0, 1.0, 1.0, -1.0])
    seen_reward, new_reward = transform.novelty(state, jnp.stack([often, new]))
    assert float(seen_reward) < 0.1 * float(new_reward)
    assert float(metrics["rnd/loss"]) < 0.05


def test_rnd_normalises_observations_and_scales_by_the_intrinsic_returns_std():
    transform = _rnd("reward.rnd.return_discount=0.5")
    obs = jnp.arange(4.0)
    state = transform.init(jax.random.key(0), obs)
    # Before the predictor's first step only the observation statistics move.
    warm = transform.observe(state, {"obs": jnp.ones((4, 5, 4))})
    assert float(warm.obs_moments.count) == 20 and float(warm.return_moments.count) == 0
    state = state.replace(updates=jnp.ones((), jnp.int32))
    stream = jnp.asarray(np.random.default_rng(1).normal(2.0, 3.0, size=(4, 5, 4)), jnp.float32)
    state = transform.observe(state, {"obs": stream})
    flat = np.asarray(stream).reshape(-1, 4)
    np.testing.assert_allclose(state.obs_moments.mean, flat.mean(0), rtol=1e-5)
    far = jnp.full((4,), 1e3)
    assert float(jnp.max(transform.normalise(state, far))) == 5.0  # clipped at 5
    # The return filter by hand: per env, g_t = 0.5 g_{t-1} + e_t over the stream's errors.
    errors = np.asarray(transform.error(state, state.predictor, stream))  # [N=4, T=5]
    returns = np.zeros_like(errors)
    carry = np.zeros(4)
    for t in range(5):
        carry = 0.5 * carry + errors[:, t]
        returns[:, t] = carry
    np.testing.assert_allclose(state.return_filter, carry, rtol=1e-5)
    np.testing.assert_allclose(state.return_moments.std, returns.std(), rtol=1e-4)
    np.testing.assert_allclose(
        transform.novelty(state, stream[0]), errors[0] / returns.std(), rtol=1e-4
    )


def test_rnd_uses_the_papers_convolutions_on_large_images_and_dense_layers_otherwise():
    transform = _rnd()
    big = transform.init(jax.random.key(0), jnp.zeros((64, 64, 3), jnp.uint8))
    small = transform.init(jax.random.key(0), jnp.zeros((10, 10, 3), jnp.uint8))
    assert "Conv_0" in big.target["params"] and "Conv_0" in big.predictor["params"]
    assert "Conv_0" not in small.target["params"]
    # The predictor is one dense layer deeper than the target.
    assert len(small.predictor["params"]) == len(small.target["params"]) + 1


# --------------------------------------------------------------------------- disagreement


def _disagreement(*overrides):
    config = tiny("reward.transform=disagreement", *overrides)
    env, params = jaxmb.envs.make(config.env.id)
    agent = jaxmb.agents.make(config, env, params)
    return rewards.make(config, agent), config


def test_disagreement_is_zero_when_the_members_are_identical():
    transform, config = _disagreement()
    state = transform.init(jax.random.key(0), jnp.zeros(4))
    one = jax.tree.map(lambda x: jnp.broadcast_to(x[:1], x.shape), state.ensemble)
    latent = jax.random.uniform(jax.random.key(1), (3, 6, config.agent.network.latent_dim))
    batch = {"latent": latent, "action": jnp.zeros((3, 6), jnp.int32)}
    np.testing.assert_array_equal(transform.disagreement(one, batch), 0.0)
    assert float(jnp.min(transform.disagreement(state.ensemble, batch))) > 0.0


def test_disagreement_falls_where_the_ensemble_was_trained():
    """Members fitted to transitions of a fixed map agree there, and still disagree on inputs
    far from the data."""
    transform, config = _disagreement("reward.disagreement.normalize=false")
    dim = config.agent.network.latent_dim
    state = transform.init(jax.random.key(0), jnp.zeros(4))
    latent = jax.random.uniform(jax.random.key(1), (16, 6, dim))
    latent = latent.at[:, 1:].set(jnp.roll(latent[:, :-1], 1, axis=-1))  # z' = roll(z)
    ended = jnp.zeros((16, 6), bool)
    batch = {"latent": latent, "action": jnp.ones((16, 6), jnp.int32)}
    batch.update(terminated=ended, truncated=ended)
    before = float(jnp.mean(transform.intrinsic(state, batch)))
    update = jax.jit(transform.update)
    first = None
    for i in range(300):
        state, metrics = update(state, batch, jax.random.key(i))
        first = metrics["disagreement/loss"] if first is None else first
    seen = float(jnp.mean(transform.intrinsic(state, batch)))
    far = dict(batch, latent=3.0 + latent)
    assert seen < 0.1 * before
    assert seen < 0.1 * float(jnp.mean(transform.intrinsic(state, far)))
    assert float(metrics["disagreement/loss"]) < 0.2 * float(first)


def test_disagreement_needs_an_agent_with_latents():
    with pytest.raises(ConfigError, match="represent") as err:
        rewards.make(tiny("reward.transform=disagreement"))
    assert err.value.key == "reward.transform"


# --------------------------------------------------------------------------- in the loop

MARKER = 1e4  # the task reward per step of the marker env: unmistakable in any target


class _MarkedReward(Wrapper):
    """CartPole paying MARKER per step."""

    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action, params)
        return obs, state, MARKER * reward, terminated, truncated, info


def _marker_env(params):
    env, _ = jaxmb.envs.make("gymnax:CartPole-v1")
    return _MarkedReward(env)


try:
    jaxmb.envs.register(
        "test:MarkedCartPole-v1",
        _marker_env,
        default_params=lambda: jaxmb.envs.make("gymnax:CartPole-v1")[1],
    )
except ValueError:  # already registered (the module imported twice)
    pass


@pytest.mark.parametrize(
    "kind, transform", [("muzero", "rnd"), ("q_learning", "disagreement")], ids=str
)
def test_pretraining_never_shows_the_task_reward_to_the_targets(monkeypatch, kind, transform):
    """Pre-training on intrinsic reward only: no reward or value target the agent trains on
    comes near the marker, while the env's return (multiples of the marker) is logged."""
    seen = []
    agent_cls = MuZero
    if kind == "q_learning":
        from jaxmb.baselines.q_learning import QLearning as agent_cls

    method = "targets" if kind == "muzero" else "compute_targets"
    original = getattr(agent_cls, method)

    def watched(self, *args):
        targets = original(self, *args)
        batch = args[-2] if kind == "muzero" else args[-1]
        largest = jnp.max(jnp.abs(jnp.asarray([jnp.max(jnp.abs(v)) for v in _numeric(targets)])))
        jax.debug.callback(seen.append, jnp.maximum(largest, jnp.max(jnp.abs(batch["reward"]))))
        return targets

    monkeypatch.setattr(agent_cls, method, watched)
    # MuZero through the phase weights (the whole run is the exploration phase), the baseline
    # through the task weights.
    weights = (
        ["reward.exploration_env_steps=100000"]
        if kind == "muzero"
        else ["reward.env_weight=0", "reward.intrinsic_weight=1"]
    )
    overrides = ["env.id=test:MarkedCartPole-v1", f"reward.transform={transform}", *weights]
    config = tiny(*overrides)
    if kind == "q_learning":
        config = configlib.apply_overrides(with_kind(tiny(), kind), overrides)
    _, metrics = jax.jit(make_train(config))(jax.random.key(0))
    jax.effects_barrier()
    assert seen and max(float(x) for x in seen) < 100.0
    learning = np.asarray(metrics["learning"]) == 1
    np.testing.assert_array_equal(np.asarray(metrics["reward/env"])[learning], MARKER)
    intrinsic = np.asarray(metrics["reward/intrinsic"])[learning]
    # (RND pays nothing in the first learning iteration: its scale starts with training.)
    assert (intrinsic[1:] > 0.0).all()
    np.testing.assert_allclose(np.asarray(metrics["reward/trained"])[learning], intrinsic)
    returns = np.asarray(metrics["train/episode_return"])
    assert np.nanmax(returns) >= 5 * MARKER  # the env's own return, logged unchanged


def _numeric(tree):
    return [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)]
