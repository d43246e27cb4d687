"""`jumanji:Sokoban-v0` keeps the jaxmb contract, matches jumanji stepped directly, and
loads the user's own Boxoban files without touching the network."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("jumanji")

import jaxmb.envs  # noqa: E402
from jaxmb.envs.jumanji_adapter import (  # noqa: E402
    CHANNELS,
    JumanjiSokoban,
    load_levels,
    parse_boxoban_text,
)

ENV_ID = "jumanji:Sokoban-v0"
UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3

# Two levels in Boxoban's text format: jumanji's own ToyGenerator levels (two rows end in
# a floor cell, whose trailing space is left out: the parser pads rows to 10).
BOXOBAN_TEXT = """; 0
##########
# @      #
# $    . #
#  $# .  #
#  .#$  #
# . # $ #
#        #
##########
##########
##########

; 1
##########
#        #
#$ #   . #
# # $ # .#
#  .# $  #
# @ # . $#
#        #
##########
##########
##########
"""


def _step_many(env, params, state, actions, key):
    def body(state, xs):
        key, action = xs
        obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)
        return state, (obs, reward, terminated, truncated, info)

    keys = jax.random.split(key, len(actions))
    return jax.jit(lambda s: jax.lax.scan(body, s, (keys, jnp.asarray(actions, jnp.int32))))(state)


def test_simple_level_solved_by_hand_with_hand_computed_rewards():
    # SimpleSolveGenerator: agent at (4, 2) under a row of 4 boxes (row 3) below 4 targets
    # (row 2). Push each box up, stepping down and right between pushes.
    env, params = jaxmb.envs.make(ENV_ID, levels="simple")
    obs, state = jax.jit(env.reset)(jax.random.PRNGKey(0), params)
    assert obs.shape == env.observation_space.shape and obs.dtype == jnp.float32
    assert env.observation_space.contains(np.asarray(obs))
    actions = [UP, DOWN, RIGHT, UP, DOWN, RIGHT, UP, DOWN, RIGHT, UP]
    _, (obs, reward, terminated, truncated, info) = _step_many(
        env, params, state, actions, jax.random.PRNGKey(1)
    )
    push, move = 1.0 - 0.1, -0.1
    expected = [push, move, move, push, move, move, push, move, move, 1.0 + 10.0 - 0.1]
    np.testing.assert_allclose(reward, expected, rtol=1e-6)
    assert terminated.tolist() == [False] * 9 + [True]
    assert not truncated.any()
    assert info["discount"].tolist() == [1.0] * 9 + [0.0]
    assert bool(info["solved"][-1])
    box_on_target = CHANNELS.index("box_on_target")
    assert int(info["final_observation"][-1][..., box_on_target].sum()) == 4
    # The episode ended, so the returned observation is the (same) level drawn anew.
    np.testing.assert_array_equal(obs[-1], jax.jit(env.reset)(jax.random.PRNGKey(2), params)[0])


def test_time_limit_truncates_where_jumanji_terminates():
    limit = 5
    env, params = jaxmb.envs.make(ENV_ID, max_steps_in_episode=limit)
    from jumanji.environments import Sokoban
    from jumanji.environments.routing.sokoban.generator import ToyGenerator

    reference = Sokoban(generator=ToyGenerator(), time_limit=limit)
    key = jax.random.PRNGKey(3)
    _, state = env.reset(key, params)
    ref_state, _ = reference.reset(key)
    actions = np.asarray(jax.random.randint(jax.random.PRNGKey(4), (limit,), 0, 4))
    _, (obs, reward, terminated, truncated, info) = _step_many(
        env, params, state, actions, jax.random.PRNGKey(5)
    )
    for t, action in enumerate(actions):
        ref_state, timestep = jax.jit(reference.step)(ref_state, jnp.int32(action))
        np.testing.assert_allclose(reward[t], timestep.reward, rtol=1e-6)
        expected_obs = jax.nn.one_hot(
            reference.grid_combine(ref_state.variable_grid, ref_state.fixed_grid), len(CHANNELS)
        )
        np.testing.assert_array_equal(info["final_observation"][t], expected_obs)
        # jumanji ends the episode at its time limit with discount 0; the adapter truncates.
        assert bool(timestep.last()) == (t == limit - 1)
        assert bool(truncated[t]) == (t == limit - 1)
    assert float(timestep.discount) == 0.0
    assert not terminated.any()
    assert float(info["discount"][-1]) == 1.0


def test_jit_and_vmap_and_spaces():
    env, params = jaxmb.envs.make(ENV_ID)
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    obs, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    assert obs.shape == (8, *env.observation_space.shape)
    actions = jnp.arange(8, dtype=jnp.int32) % 4
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    obs, state, reward, terminated, truncated, info = step(keys, state, actions, params)
    assert obs.shape == (8, 10, 10, len(CHANNELS)) and reward.dtype == jnp.float32
    assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
    np.testing.assert_array_equal(obs.sum(-1), 1.0)  # one code per cell
    assert env.action_mask(state, params).shape == (4,)
    assert env.render(jax.tree.map(lambda x: x[0], state)).dtype == np.uint8


def test_boxoban_files_load_from_a_directory_a_file_and_a_npy(tmp_path):
    fixed, variable = parse_boxoban_text(BOXOBAN_TEXT)
    assert fixed.shape == variable.shape == (2, 10, 10)
    assert (variable == 4).sum(axis=(1, 2)).tolist() == [4, 4]  # 4 boxes each
    (tmp_path / "000.txt").write_text(BOXOBAN_TEXT)
    np.save(tmp_path / "levels.npy", np.stack([fixed, variable], axis=-1))
    for levels in (tmp_path, tmp_path / "000.txt", tmp_path / "levels.npy"):
        got = load_levels(levels)
        np.testing.assert_array_equal(got[0], fixed)
        np.testing.assert_array_equal(got[1], variable)
    env, params = jaxmb.envs.make(ENV_ID, levels=str(tmp_path))
    keys = jax.random.split(jax.random.PRNGKey(0), 32)
    _, states = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    drawn = {int(np.argmax([(s == v).all() for v in variable])) for s in states.variable_grid}
    assert drawn == {0, 1}  # both levels are drawn, and nothing else
    assert all(any((s == v).all() for v in variable) for s in states.variable_grid)


def test_bad_levels_say_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="Boxoban levels not found"):
        jaxmb.envs.make(ENV_ID, levels=str(tmp_path / "missing"))
    (tmp_path / "bad.txt").write_text("; 0\n#####\n")
    with pytest.raises(ValueError, match="not 10x10"):
        load_levels(tmp_path / "bad.txt")
    env, _ = jaxmb.envs.make(ENV_ID)
    _, simple = jaxmb.envs.make(ENV_ID, levels="simple")
    with pytest.raises(ValueError, match="built for 'toy'"):
        env.reset(jax.random.PRNGKey(0), simple)
    assert isinstance(env, JumanjiSokoban)
