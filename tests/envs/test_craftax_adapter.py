"""The craftax adapter keeps the jaxmb contract and reproduces craftax step for step.

Compiling a craftax step takes seconds, so one program (`rollout`, module-scoped) serves
most tests: a batch of `NUM_ENVS` Classic-Symbolic envs stepped `NUM_STEPS` times under
`jax.jit(jax.vmap(...))` with random actions, side by side with craftax's own auto-reset
env and its non-auto-reset env fed the same keys, actions and states. The time limit is
set to `TIME_LIMIT`, so several episodes end by truncation; env 1 starts with zero health
(it dies on its first step) and env 2 with zero health one step before the time limit
(death and time limit coincide). Each env starts with its own set of achievements already
unlocked (`_preset_achievements`), which its first episode reports when it ends.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("craftax")

import jaxmb.envs  # noqa: E402
from jaxmb.envs.craftax_adapter import CRAFTAX_ENV_NAMES, CraftaxEnv  # noqa: E402

ENV_ID = "craftax:Craftax-Classic-Symbolic-v1"
NUM_ENVS = 3
NUM_STEPS = 30
TIME_LIMIT = 8
DIES_AT_ONCE, DIES_AT_TIME_LIMIT = 1, 2


# Crafter's 22 achievements (Hafner 2021, Table F.1 / crafter's data.yaml), which
# Craftax-Classic keeps.
CRAFTER_ACHIEVEMENTS = {
    "collect_coal",
    "collect_diamond",
    "collect_drink",
    "collect_iron",
    "collect_sapling",
    "collect_stone",
    "collect_wood",
    "defeat_skeleton",
    "defeat_zombie",
    "eat_cow",
    "eat_plant",
    "make_iron_pickaxe",
    "make_iron_sword",
    "make_stone_pickaxe",
    "make_stone_sword",
    "make_wood_pickaxe",
    "make_wood_sword",
    "place_furnace",
    "place_plant",
    "place_stone",
    "place_table",
    "wake_up",
}


def _preset_achievements(case: jax.Array, num: int) -> jax.Array:
    """`bool[num]`: the achievements env `case` starts with, a different third for each."""
    return (jnp.arange(num) + case) % 3 == 0


def _rollout(env: CraftaxEnv, key: jax.Array, case: jax.Array, params) -> dict:
    """One env of the batch: adapter, craftax auto-reset and craftax no-auto-reset.

    `case` picks the start: a fresh world (0), `DIES_AT_ONCE` or `DIES_AT_TIME_LIMIT`.
    """
    from craftax.craftax_env import make_craftax_env_from_name

    reference = make_craftax_env_from_name(env.id.split(":", 1)[1], auto_reset=True)
    no_reset = env.craftax_env
    key_reset, key_rollout = jax.random.split(key)
    reset_obs, state = env.reset(key_reset, params)
    ref_obs, ref_state = reference.reset(key_reset, params)
    dead = state.replace(player_health=jnp.zeros_like(state.player_health))
    at_limit = dead.replace(timestep=jnp.full_like(state.timestep, TIME_LIMIT - 1))
    state = jax.tree.map(
        lambda normal, d, lim: jnp.where(
            case == DIES_AT_ONCE, d, jnp.where(case == DIES_AT_TIME_LIMIT, lim, normal)
        ),
        state,
        dead,
        at_limit,
    )
    state = state.replace(
        achievements=_preset_achievements(case, state.achievements.shape[-1]) | state.achievements
    )
    ref_state = state
    late = state.replace(timestep=jnp.full_like(state.timestep, TIME_LIMIT))
    start = {
        "start_terminated": env.is_terminated(state, params),
        "start_truncated": env.is_truncated(state, params),
        "late_truncated": env.is_truncated(late, params),
        "late_terminated": env.is_terminated(late, params),
    }

    def body(carry, key):
        state, ref_state = carry
        key_action, key_step = jax.random.split(key)
        action = jax.random.randint(key_action, (), 0, env.num_actions, dtype=jnp.int32)
        obs, next_state, reward, terminated, truncated, info = env.step(
            key_step, state, action, params
        )
        ref = reference.step(key_step, ref_state, action, params)
        # craftax's auto-reset steps with the first half of the key; its no-auto-reset env
        # then gives the observation before any reset.
        pre_reset = no_reset.step(jax.random.split(key_step)[0], state, action, params)
        record = {
            "obs": obs,
            "reward": reward,
            "terminated": terminated,
            "truncated": truncated,
            "final_observation": info["final_observation"],
            "discount": info["discount"],
            "score": info["score"],
            "timestep": next_state.timestep,
            "mask": env.action_mask(next_state, params),
            "ref_obs": ref[0],
            "ref_reward": ref[2],
            "ref_done": ref[3],
            "ref_timestep": ref[1].timestep,
            "pre_reset_obs": pre_reset[0],
            "pre_reset_done": pre_reset[3],
            # [num_achievements], in the order of `env.achievement_info_keys`.
            "achievements": jnp.stack([info[k] for k in env.achievement_info_keys.values()]),
            "ref_achievements": jnp.stack([ref[4][k] for k in env.achievement_info_keys.values()]),
            "ref_achievement_keys": jnp.asarray(
                sorted(k for k in ref[4] if k.startswith("Achievements/"))
                == sorted(env.achievement_info_keys.values())
            ),
        }
        return (next_state, ref[1]), record

    keys = jax.random.split(key_rollout, NUM_STEPS)
    _, out = jax.lax.scan(body, (state, ref_state), keys)
    return {"reset_obs": reset_obs, "ref_reset_obs": ref_obs, **start, **out}


@pytest.fixture(scope="module")
def env_and_params():
    env, params = jaxmb.envs.make(ENV_ID, max_timesteps=TIME_LIMIT)
    return env, params


@pytest.fixture(scope="module")
def out(env_and_params):
    env, params = env_and_params
    keys = jax.random.split(jax.random.key(0), NUM_ENVS)
    program = jax.jit(jax.vmap(lambda *args: _rollout(env, *args), in_axes=(0, 0, None)))
    result = jax.device_get(program(keys, jnp.arange(NUM_ENVS), params))
    # [T, B, ...] like a `VectorEnv` rollout.
    unbatched_time = {"reset_obs", "ref_reset_obs", "start_terminated", "start_truncated"}
    unbatched_time |= {"late_terminated", "late_truncated"}
    return {k: v if k in unbatched_time else np.swapaxes(v, 0, 1) for k, v in result.items()}


def test_make_passes_params_through(env_and_params):
    env, params = env_and_params
    assert params.max_timesteps == TIME_LIMIT
    assert env.default_params() == params
    assert env.id == ENV_ID and env.num_actions == 17
    _, default_params = jaxmb.envs.make(ENV_ID)
    assert default_params.max_timesteps == 10_000


def test_spaces_contain_what_reset_and_step_return(env_and_params, out):
    env, _ = env_and_params
    shape = env.observation_space.shape
    assert shape == (1345,)
    for name in ("reset_obs", "obs", "final_observation"):
        assert out[name].dtype == np.float32, name
        for obs in out[name].reshape(-1, *shape):
            assert env.observation_space.contains(obs), name
    for name, dtype in (("reward", np.float32), ("terminated", np.bool_), ("truncated", np.bool_)):
        assert out[name].shape == (NUM_STEPS, NUM_ENVS) and out[name].dtype == dtype, name
    assert out["mask"].shape == (NUM_STEPS, NUM_ENVS, 17) and out["mask"].all()


def test_matches_craftax_auto_reset_env(out):
    np.testing.assert_array_equal(out["reset_obs"], out["ref_reset_obs"])
    np.testing.assert_array_equal(out["obs"], out["ref_obs"])
    np.testing.assert_array_equal(out["reward"], out["ref_reward"])
    np.testing.assert_array_equal(out["timestep"], out["ref_timestep"])
    np.testing.assert_array_equal(out["terminated"] | out["truncated"], out["ref_done"])
    assert (out["reward"] != 0).any(), "no reward in the rollout; the comparison is weak"


def test_final_observation_is_the_observation_before_the_reset(out):
    np.testing.assert_array_equal(out["final_observation"], out["pre_reset_obs"])
    done = out["terminated"] | out["truncated"]
    np.testing.assert_array_equal(out["final_observation"][~done], out["obs"][~done])
    assert (out["final_observation"][done] != out["obs"][done]).any(axis=-1).all()


def test_time_limit_truncates_and_does_not_terminate(out):
    normal = 0
    truncated = out["truncated"][:, normal]
    np.testing.assert_array_equal(np.flatnonzero(truncated), np.arange(1, 4) * TIME_LIMIT - 1)
    assert not out["terminated"][:, normal].any()
    np.testing.assert_array_equal(out["discount"][:, normal], 1.0)
    # A new episode restarts the clock.
    np.testing.assert_array_equal(out["timestep"][truncated, normal], 0)
    # craftax reports the episode's score when it ends (and only then).
    assert (out["score"][~truncated, normal] == 0).all()


def test_achievements_match_craftax_and_are_reported_at_episode_ends(env_and_params, out):
    env, _ = env_and_params
    assert set(env.achievement_info_keys) == CRAFTER_ACHIEVEMENTS
    assert all(v == f"Achievements/{k}" for k, v in env.achievement_info_keys.items())
    # The declared keys are exactly the Achievements/ keys of craftax's own info.
    assert out["ref_achievement_keys"].all()
    np.testing.assert_array_equal(out["achievements"], out["ref_achievements"])
    done = out["terminated"] | out["truncated"]  # [T, B]
    assert set(np.unique(out["achievements"])) <= {0.0, 100.0}
    assert (out["achievements"][~done] == 0).all()
    # Each env's first episode ends holding (at least) the achievements it started with.
    num = len(CRAFTER_ACHIEVEMENTS)
    for case in range(NUM_ENVS):
        first_end = np.flatnonzero(done[:, case])[0]
        preset = np.asarray(_preset_achievements(case, num))
        assert (out["achievements"][first_end, case][preset] == 100).all(), case


def test_death_terminates(out):
    t0 = 0
    assert out["terminated"][t0, DIES_AT_ONCE] and not out["truncated"][t0, DIES_AT_ONCE]
    assert out["discount"][t0, DIES_AT_ONCE] == 0.0
    assert out["timestep"][t0, DIES_AT_ONCE] == 0  # already the next episode
    # After the reset it plays on at full health, then meets the time limit.
    assert out["truncated"][TIME_LIMIT, DIES_AT_ONCE]
    assert not out["terminated"][1:, DIES_AT_ONCE].any()


def test_death_at_the_time_limit_is_terminated_only(out):
    assert out["ref_done"][0, DIES_AT_TIME_LIMIT]
    assert out["terminated"][0, DIES_AT_TIME_LIMIT]
    assert not out["truncated"][0, DIES_AT_TIME_LIMIT]


def test_is_terminated_and_is_truncated_read_the_state(out):
    # A fresh world; a dead player (at timestep 0 and at TIME_LIMIT - 1); any state at the
    # time limit is truncated unless the player is dead.
    np.testing.assert_array_equal(out["start_terminated"], [False, True, True])
    np.testing.assert_array_equal(out["start_truncated"], [False, False, False])
    np.testing.assert_array_equal(out["late_terminated"], [False, True, True])
    np.testing.assert_array_equal(out["late_truncated"], [True, False, False])


def test_step_rejects_a_batched_action(env_and_params):
    env, params = env_and_params
    _, state = jax.eval_shape(env.reset, jax.random.key(0), params)
    with pytest.raises(AssertionError):
        jax.eval_shape(env.step, jax.random.key(1), state, jnp.zeros((2,), jnp.int32), params)


@pytest.mark.parametrize(
    "name",
    [
        # Tracing the pixel renderer takes about 35 s on 2 cores: `make test-all` only. The
        # adapter code is the same for every variant.
        pytest.param(n, marks=pytest.mark.heavy) if "Pixels" in n else n
        for n in CRAFTAX_ENV_NAMES
    ],
)
def test_every_variant_traces_to_its_spaces(name):
    """Shapes and dtypes of each variant, traced without compiling (compiles are slow)."""
    # The first Pixels build writes craftax's texture cache into its package (~20 s, once).
    env, params = jaxmb.envs.make(f"craftax:{name}")
    obs, state = jax.eval_shape(env.reset, jax.random.key(0), params)
    action = jax.ShapeDtypeStruct((), jnp.int32)
    next_obs, _, reward, terminated, truncated, info = jax.eval_shape(
        env.step, jax.random.key(1), state, action, params
    )
    shape = env.observation_space.shape
    for array in (obs, next_obs, info["final_observation"]):
        assert array.shape == shape and array.dtype == jnp.float32
    assert (reward.dtype, terminated.dtype, truncated.dtype) == (jnp.float32, bool, bool)
    assert env.action_mask(state, params).shape == (env.num_actions,)
    expected = {
        "Craftax-Classic-Symbolic-v1": ((1345,), 17, 1.0),
        "Craftax-Classic-Pixels-v1": ((63, 63, 3), 17, 1.0),  # [H, W, C], channels last
        "Craftax-Symbolic-v1": ((8268,), 43, np.inf),
    }[name]
    assert (shape, env.num_actions, float(env.observation_space.high.max())) == expected


def test_override_of_an_unknown_param_names_the_valid_ones():
    with pytest.raises(ValueError, match="max_timesteps"):
        jaxmb.envs.make(ENV_ID, max_timestep=5)


def test_params_are_craftax_env_params(env_and_params):
    _, params = env_and_params
    from craftax.craftax_classic.envs.craftax_state import EnvParams

    assert isinstance(params, EnvParams)
    assert dataclasses.replace(params, day_length=10).day_length == 10
