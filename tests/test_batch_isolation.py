"""Batch isolation: one element's input changes no other element's search or targets.

A batch of searches is a batch of independent problems that share one program. A statistic
taken over the batch axis (a min-max normaliser, a mean over roots, a parent Q carried from one
element into the next as in LightZero PR #474) lets one env's observation steer another env's
policy, value or action: training still runs and nothing crashes.

Each test runs the same computation twice with the same key: on a batch, and on that batch with
element `CHANGED` alone changed (its observation; its env state with `agent.search.model=env`;
its legal mask in `act`'s third run and in the other tests). Every other element's outputs
must be bitwise equal between the runs, and the changed element's own value must differ, so
the change reached the search and the test can fail. The batch keeps its size: mctx draws the
root noise of all elements from one key, which is isolated as long as element b's draw
depends on b alone.

The agents are random: freshly initialised output layers are zero (`networks.Head`), so prior
and value would not depend on the observation at all, and the tests add noise to every
parameter first. Each compile costs seconds, so `act` runs 4 of the 8 combinations of
algorithm, search model and acting mode, which still pair every value of each with every value
of the others.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from tiny_config import tiny

from jaxmb.envs import VectorEnv
from jaxmb.train import build_agent, build_env

B = 5
#: The element that changes: in the middle, so a leak to earlier or to later elements shows.
CHANGED = 2
OTHERS = np.arange(B) != CHANGED

#: Pendulum with its torque on a 5-value grid: 5 actions, so masks leave real choices.
PENDULUM = [
    "env.id=gymnax:Pendulum-v1",
    "env.discretize.mode=grid",
    "env.discretize.values_per_dim=5",
    # A random termination head ends most model steps (discount 0), and then the values
    # below the root never reach it: no predicted ends, so every node's value counts.
    "agent.loss.terminal_threshold=1.0",
]
#: Legal actions per element, all different; `LEGAL_CHANGED` replaces the changed element's
#: (with a different number of legal actions, so even a leaked count of them shows).
LEGAL = np.array(
    [
        [1, 1, 1, 1, 1],
        [0, 1, 1, 0, 1],
        [1, 0, 1, 1, 0],
        [0, 0, 1, 1, 1],
        [1, 1, 0, 0, 0],
    ],
    bool,
)
LEGAL_CHANGED = np.array([0, 1, 0, 0, 1], bool)


def _noisy_state(agent, key: jax.Array, scale: float = 0.3):
    """A random agent whose prior, value and model all depend on their inputs."""
    state = agent.init(key)
    flat, unravel = ravel_pytree(state.params)
    # One draw for all parameters: a draw per leaf costs seconds of compiling.
    params = unravel(flat + scale * jax.random.normal(jax.random.fold_in(key, 1), flat.shape))
    return state.replace(params=params, target_params=params)


def _with_element(batch, other, index: int = CHANGED):
    """`batch` with element `index` of every leaf taken from `other`."""
    return jax.tree.map(lambda x, y: x.at[index].set(y[index]), batch, other)


def _assert_isolated(base: dict, changed: dict, names) -> None:
    """Elements other than `CHANGED` are bitwise equal in `names`; `CHANGED`'s value moved."""
    for name in names:
        np.testing.assert_array_equal(
            np.asarray(changed[name])[OTHERS],
            np.asarray(base[name])[OTHERS],
            err_msg=f"{name}: changing element {CHANGED} changed other elements",
        )
    assert not np.array_equal(
        np.asarray(changed["value"])[CHANGED], np.asarray(base["value"])[CHANGED]
    ), f"element {CHANGED}'s value did not change: the change never reached the search"


def _assert_legal(out: dict, legal: np.ndarray) -> None:
    """Illegal actions get no policy mass and are never chosen."""
    policy = np.asarray(out["policy"])
    assert (policy[~legal] == 0).all(), "an illegal action got policy mass"
    np.testing.assert_allclose(policy.sum(-1), 1.0, rtol=1e-5)
    chosen = np.asarray(out["action"])
    assert legal[np.arange(len(chosen)), chosen].all(), "an illegal action was chosen"


@functools.cache
def _agent(algorithm: str, model: str, *extra: str):
    config = tiny(
        *PENDULUM, f"agent.search.algorithm={algorithm}", f"agent.search.model={model}", *extra
    )
    env, env_params = build_env(config)
    agent = build_agent(config, env, env_params)
    return agent, _noisy_state(agent, jax.random.key(0)), env, env_params


def _acting(agent, training: bool):
    @jax.jit
    def act(state, obs, key, mask, env_state):
        action, info = agent.act(
            state, obs, key, training=training, action_mask=mask, env_state=env_state
        )
        return {"action": action, **info}

    return act


ACT_OUTPUTS = ("policy", "value", "action", "simulations")


#: Every pair of (algorithm, search model, acting mode) values, in 4 of the 8 combinations:
#: each combination is a compile of several seconds.
ACT_CASES = [
    ("muzero", "learned", True),
    ("muzero", "env", False),
    ("gumbel", "learned", False),
    ("gumbel", "env", True),
]


@pytest.mark.parametrize(
    ("algorithm", "model", "training"),
    ACT_CASES,
    ids=[f"{a}-{m}-{'train' if t else 'greedy'}" for a, m, t in ACT_CASES],
)
def test_act_is_isolated_across_the_batch(algorithm, model, training):
    """`act` with root noise (training: Dirichlet for PUCT, Gumbel noise for Gumbel) or
    greedy, with masks that differ per element. Changing element `CHANGED`'s observation and
    env state (the root of search with `search.model=env`), then also its mask, leaves every
    other element's policy, value, action and simulation count as they were."""
    agent, state, env, env_params = _agent(algorithm, model)
    venv = VectorEnv(env, B)
    obs, env_state = venv.reset(jax.random.key(1), env_params)
    # Element CHANGED from another reset: a new observation and the env state it belongs to.
    other_obs, other_state = venv.reset(jax.random.key(2), env_params)
    changed_obs = _with_element(obs, other_obs)
    changed_state = _with_element(env_state, other_state)
    assert not np.array_equal(changed_obs[CHANGED], obs[CHANGED])
    changed_legal = LEGAL.copy()
    changed_legal[CHANGED] = LEGAL_CHANGED
    act = _acting(agent, training)
    key = jax.random.key(3)

    base = act(state, obs, key, jnp.asarray(LEGAL), env_state)
    changed = act(state, changed_obs, key, jnp.asarray(LEGAL), changed_state)
    changed_and_masked = act(state, changed_obs, key, jnp.asarray(changed_legal), changed_state)

    _assert_isolated(base, changed, ACT_OUTPUTS)
    _assert_isolated(base, changed_and_masked, ACT_OUTPUTS)
    for out, legal in [(base, LEGAL), (changed, LEGAL), (changed_and_masked, changed_legal)]:
        _assert_legal(out, legal)
    if algorithm == "gumbel":  # a continuous improved policy: the changed element's moves too
        assert not np.array_equal(changed["policy"][CHANGED], base["policy"][CHANGED])


def _replay_batch(key: jax.Array, agent, length: int) -> dict:
    """`B` windows of `length` steps, as `replay.sample` returns them, with masks per
    window and an episode end in window 0."""
    obs_key, reward_key, policy_key = jax.random.split(key, 3)
    num_actions = agent.num_actions
    obs_shape = agent.observation_space.shape
    legal = jnp.broadcast_to(jnp.asarray(LEGAL)[:, None], (B, length, num_actions))
    terminated = jnp.zeros((B, length), bool).at[0, 1].set(True)
    logits = jax.random.normal(policy_key, (B, length, num_actions))
    return {
        "obs": jax.random.normal(obs_key, (B, length, *obs_shape)),
        "action": jnp.zeros((B, length), jnp.int32),
        "reward": jax.random.normal(reward_key, (B, length)),
        "terminated": terminated,
        "truncated": jnp.zeros((B, length), bool),
        "policy": jax.nn.softmax(jnp.where(legal, logits, -jnp.inf)),
        "value": jnp.zeros((B, length)),
        "final_value": jnp.zeros((B, length)),
        "action_mask": legal,
        "weight": jnp.ones((B,)),
    }


def test_reanalyse_targets_are_isolated_across_windows():
    """Reanalyse searches every window's positions in one batch (`reanalyse_fraction=1`):
    changing one window's observations and mask leaves the other windows' targets as they
    were."""
    agent, state, _, _ = _agent("gumbel", "learned", "agent.loss.reanalyse_fraction=1.0")
    loss_cfg = agent.config.loss
    batch = _replay_batch(jax.random.key(4), agent, loss_cfg.unroll_steps + loss_cfg.td_steps + 1)
    changed = dict(batch, obs=batch["obs"].at[CHANGED].add(1.0))
    changed["action_mask"] = changed["action_mask"].at[CHANGED].set(jnp.asarray(LEGAL_CHANGED))
    targets = jax.jit(agent.compute_targets)
    key = jax.random.key(5)

    base = targets(state.target_params, batch, key)
    moved = targets(state.target_params, changed, key)

    # `simulations` is the batch's total by design.
    per_window = [name for name in base if name != "simulations"]
    _assert_isolated(base, moved, per_window)
    assert not np.array_equal(moved["policy"][CHANGED], base["policy"][CHANGED])
    for out, legal in [(base, LEGAL), (moved, np.where(OTHERS[:, None], LEGAL, LEGAL_CHANGED))]:
        policy = np.asarray(out["policy"])
        assert (policy[np.broadcast_to(~legal[:, None], policy.shape)] == 0).all()


def _after_black_moves(obs: jax.Array, legal: np.ndarray, points: np.ndarray):
    """Empty 9x9 boards `[B, ...]` after Black's first stone on `points` `[B]`, as pgx
    observes them for White: the opponent's stones now (channel 1), White to move (channel
    16), the point taken. Written by hand (it is what pgx's step gives) because stepping pgx
    costs a compile of its own."""
    rows, cols = np.divmod(points, 9)
    obs = obs.at[np.arange(B), rows, cols, 1].set(1.0).at[..., 16].set(1.0)
    legal = legal.copy()
    legal[np.arange(B), points] = False
    return obs, legal


def test_go_is_isolated_across_the_batch():
    """Two players (signed discounts), a conv torso, 82 actions of which Gumbel's sequential
    halving considers 16: moving one board's stone changes no other board's search."""
    pytest.importorskip("pgx")
    config = tiny(
        "env.id=pgx:go_9x9",
        "agent.network.torso=resnet",
        "agent.network.conv_channels=4",
        "agent.network.num_res_blocks=0",
        "agent.loss.discount=1.0",
        "agent.loss.terminal_threshold=1.0",
        "agent.search.algorithm=gumbel",
    )
    env, env_params = build_env(config)
    agent = build_agent(config, env, env_params)
    assert agent.num_players == 2
    assert agent.num_actions > config.agent.search.max_num_considered_actions
    state = _noisy_state(agent, jax.random.key(0))
    venv = VectorEnv(env, B)
    empty, env_state = jax.jit(venv.reset)(jax.random.key(1), env_params)
    all_legal = np.asarray(venv.action_mask(env_state, env_params))
    assert not np.asarray(empty).any() and all_legal.all()
    points = np.array([0, 10, 20, 30, 40])
    obs, legal = _after_black_moves(empty, all_legal, points)
    changed_obs, changed_legal = _after_black_moves(empty, all_legal, np.where(OTHERS, points, 60))
    act = _acting(agent, training=True)
    key = jax.random.key(3)

    base = act(state, obs, key, jnp.asarray(legal), env_state)
    changed = act(state, changed_obs, key, jnp.asarray(changed_legal), env_state)

    _assert_isolated(base, changed, ACT_OUTPUTS)
    _assert_legal(base, legal)
    _assert_legal(changed, changed_legal)
