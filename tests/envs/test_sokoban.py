"""`jaxmb:Sokoban-v0`: the contract under jit and vmap, exact rewards on a hand-built level,
and properties of the generated levels (solvable by a BFS written here, deterministic in the
level index, drawn only from the configured range).

Compiling dominates the run time, so every test reuses one of a few compiled programs: the
default 10x10 env's batched reset and rollout, and a 7x7 two-box env's step, generator,
batched reset and batched rollout. Params are leaves, so changing them (time limit, level
range) recompiles nothing.
"""

from __future__ import annotations

import collections
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxmb.envs
from jaxmb.envs import VectorEnv, sokoban

UP, DOWN, LEFT, RIGHT = range(4)
BATCH = 4
SMALL = sokoban.SokobanParams(height=7, width=7, num_boxes=2)
MAX_INDEX = 2**31 - 1
jit = jax.jit  # compiled fast: see tests/conftest.py

# The hand-built level of `test_rewards_on_a_hand_built_level`, padded to the small env's 7x7.
HAND_LEVEL = (
    "#######",
    "#     #",
    "#@$.  #",
    "#   $.#",
    "#######",
    "#######",
    "#######",
)


def state_from_text(rows: tuple[str, ...]) -> sokoban.SokobanState:
    """`#` wall, `@` player, `+` player on target, `$` box, `*` box on target, `.` target."""
    grid = np.array([list(row) for row in rows])
    (player,) = np.argwhere(np.isin(grid, ["@", "+"]))
    return sokoban.SokobanState(
        walls=jnp.asarray(grid == "#"),
        targets=jnp.asarray(np.isin(grid, [".", "*", "+"])),
        boxes=jnp.asarray(np.isin(grid, ["$", "*"])),
        player=jnp.asarray(player, jnp.int32),
        level=jnp.zeros((), jnp.int32),
        time=jnp.zeros((), jnp.int32),
    )


def solve(state) -> int | None:
    """Breadth-first search over (player, boxes); the length of a shortest solution, or None.

    Written independently of the env: plain Python over numpy grids.
    """
    walls = np.asarray(state.walls)
    targets = frozenset(map(tuple, np.argwhere(np.asarray(state.targets))))
    start = (tuple(int(x) for x in state.player), frozenset(map(tuple, np.argwhere(state.boxes))))
    frontier = collections.deque([(start, 0)])
    seen = {start}
    while frontier:
        (player, boxes), depth = frontier.popleft()
        if boxes == targets:
            return depth
        for d_row, d_col in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            ahead = (player[0] + d_row, player[1] + d_col)
            if walls[ahead]:
                continue
            new_boxes = boxes
            if ahead in boxes:
                beyond = (ahead[0] + d_row, ahead[1] + d_col)
                if walls[beyond] or beyond in boxes:
                    continue
                new_boxes = (boxes - {ahead}) | {beyond}
            node = (ahead, new_boxes)
            if node not in seen:
                seen.add(node)
                frontier.append((node, depth + 1))
    return None


def _rollout(env, key, actions, params):
    """Resets `BATCH` envs and steps them through `actions [T, BATCH]`; records everything."""
    vector_env = VectorEnv(env, BATCH)
    reset_key, key = jax.random.split(key)
    obs, state = vector_env.reset(reset_key, params)

    def body(state, inputs):
        action, key = inputs
        obs, state, reward, terminated, truncated, info = vector_env.step(
            key, state, action, params
        )
        record = dict(
            obs=obs,
            state=state,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            final_observation=info["final_observation"],
            mask=vector_env.action_mask(state, params),
        )
        return state, record

    keys = jax.random.split(key, actions.shape[0])
    _, records = jax.lax.scan(body, state, (actions, keys))
    return obs, state, records


@pytest.fixture(scope="module")
def default_env():
    env, params = jaxmb.envs.make("jaxmb:Sokoban-v0")
    return env, params


@pytest.fixture(scope="module")
def default_reset(default_env):
    env, _ = default_env
    return jit(jax.vmap(env.reset, in_axes=(0, None)))


@pytest.fixture(scope="module")
def small_env():
    return sokoban.build("Sokoban-v0", SMALL)


@pytest.fixture(scope="module")
def small_reset(small_env):
    return jit(jax.vmap(small_env.reset, in_axes=(0, None)))


@pytest.fixture(scope="module")
def small_step(small_env):
    return jit(small_env.step)


@pytest.fixture(scope="module")
def small_generate(small_env):
    return jit(small_env.generate)


@pytest.fixture(scope="module")
def small_rollout(small_env):
    return jit(functools.partial(_rollout, small_env))


# ---------------------------------------------------------------------------- construction


def test_make_defaults_and_overrides():
    env, params = jaxmb.envs.make("jaxmb:Sokoban-v0")
    assert params == sokoban.SokobanParams() and env.default_params() == params
    assert (params.height, params.width, params.num_boxes) == (10, 10, 4)
    assert params.max_steps_in_episode == 120
    assert env.observation_space.shape == (10, 10, len(sokoban.CHANNELS))
    assert env.observation_space.dtype == np.float32
    assert env.num_actions == 4 and env.id == "jaxmb:Sokoban-v0"

    env, params = jaxmb.envs.make("jaxmb:Sokoban-v0", num_levels=100, start_level=5)
    assert (params.num_levels, params.start_level) == (100, 5)
    assert env.default_params() == params
    # Static fields arrive as floats from YAML presets (`env.params` is a dict of floats).
    env, params = jaxmb.envs.make("jaxmb:Sokoban-v0", height=6.0, width=8.0, num_boxes=1.0)
    assert env.observation_space.shape == (6, 8, 7) and env.num_boxes == 1
    # The static fields are treedef metadata, not leaves that vmap would batch.
    assert len(jax.tree.leaves(params)) == len(dataclasses.fields(params)) - 3


def test_rejects_bad_shapes_and_foreign_params(small_env):
    with pytest.raises(ValueError, match="too few interior cells"):
        sokoban.Sokoban(sokoban.SokobanParams(height=4, width=4, num_boxes=3))
    with pytest.raises(ValueError, match="only 'Sokoban-v0'"):
        sokoban.build("Sokoban-v1", None)
    with pytest.raises(ValueError, match="7x7 with 2"):
        small_env.reset(jax.random.key(0), sokoban.SokobanParams())


# ---------------------------------------------------------------------------- contract


def test_default_env_under_jit_and_vmap(default_env, default_reset):
    """A batched rollout of the default 10x10 env past its time limit keeps the contract."""
    env, params = default_env
    steps = params.max_steps_in_episode + 10
    actions = jax.random.randint(jax.random.key(1), (steps, BATCH), 0, 4, jnp.int32)
    reset_obs, _ = default_reset(jax.random.split(jax.random.key(0), BATCH), params)
    _, state, records = jit(functools.partial(_rollout, env))(jax.random.key(0), actions, params)
    records, state = jax.device_get((records, state))

    space = env.observation_space
    for obs in (
        np.asarray(reset_obs)[0],
        records["obs"][3, 1],
        records["final_observation"][-1, 2],
    ):
        assert space.contains(obs)
        np.testing.assert_array_equal(obs.sum(-1), 1.0)  # one-hot: one channel per cell
    assert records["obs"].shape == (steps, BATCH, *space.shape)
    assert records["reward"].dtype == np.float32
    assert records["terminated"].dtype == records["truncated"].dtype == np.bool_
    assert records["mask"].all() and records["mask"].shape == (steps, BATCH, 4)
    assert env.action_space.contains(np.int32(3))

    done = records["terminated"] | records["truncated"]
    assert not (records["terminated"] & records["truncated"]).any()
    # Random play rarely solves a 4-box level: most envs hit the limit at exactly step 120.
    truncated_at = [np.flatnonzero(records["truncated"][:, b]) for b in range(BATCH)]
    for b, when in enumerate(truncated_at):
        if not records["terminated"][:, b].any():
            np.testing.assert_array_equal(when, [params.max_steps_in_episode - 1])
    # After an ended episode the state is a fresh level at time 0.
    assert (records["state"].time[done] == 0).all()
    assert (records["state"].time[~done] > 0).all()
    changed = (records["final_observation"] != records["obs"]).any(axis=(2, 3, 4))
    np.testing.assert_array_equal(changed, done)
    image = env.render(jax.tree.map(lambda x: x[0], state), params)
    assert image.shape == (80, 80, 3) and image.dtype == jnp.uint8


def test_vmap_matches_unbatched_step(small_reset, small_step, small_rollout):
    """Each member of the batched rollout equals the unbatched jitted step run alone."""
    actions = jax.random.randint(jax.random.key(3), (12, BATCH), 0, 4, jnp.int32)
    params = SMALL.replace(max_steps_in_episode=5)  # some episodes end inside the window
    key = jax.random.key(4)
    _, _, records = small_rollout(key, actions, params)
    # Rebuild the keys `VectorEnv` gave each member and replay member 1 alone.
    reset_key, rollout_key = jax.random.split(key)
    obs, state = small_reset(jax.random.split(reset_key, BATCH), params)
    state = jax.tree.map(lambda x: x[1], state)
    for t, step_key in enumerate(jax.random.split(rollout_key, actions.shape[0])):
        member_key = jax.random.split(step_key, BATCH)[1]
        obs, state, reward, terminated, truncated, _ = small_step(
            member_key, state, actions[t, 1], params
        )
        np.testing.assert_array_equal(obs, records["obs"][t, 1])
        assert float(reward) == pytest.approx(float(records["reward"][t, 1]))
        assert bool(truncated) == bool(records["truncated"][t, 1])


def test_rewards_on_a_hand_built_level(small_env, small_step):
    """On, off, blocked, back on, solved: every reward exactly, then the auto-reset."""
    state = state_from_text(HAND_LEVEL)
    obs = small_env.observation(state)
    assert obs[2, 1, sokoban.CHANNELS.index("player")] == 1
    assert obs[2, 2, sokoban.CHANNELS.index("box")] == 1
    assert obs[2, 3, sokoban.CHANNELS.index("target")] == 1
    assert obs[0, 0, sokoban.CHANNELS.index("wall")] == 1
    plan = [  # (action, expected reward)
        (RIGHT, -0.1 + 1.0),  # box onto the first target
        (RIGHT, -0.1 - 1.0),  # and off it again
        (UP, -0.1),
        (RIGHT, -0.1),
        (RIGHT, -0.1),
        (DOWN, -0.1),
        (LEFT, -0.1 + 1.0),  # pushed back from the other side
        (DOWN, -0.1),  # into a box with a wall beyond: nothing moves
        (UP, -0.1),
        (LEFT, -0.1),
        (LEFT, -0.1),
        (DOWN, -0.1),
        (DOWN, -0.1),
        (RIGHT, -0.1),
        (RIGHT, -0.1 + 1.0 + 10.0),  # the last box onto its target
    ]
    # A time limit of exactly the solution's length: solving on the last step terminates only.
    params = SMALL.replace(max_steps_in_episode=len(plan))
    key = jax.random.key(0)
    for t, (action, expected) in enumerate(plan):
        before = state
        obs, state, reward, terminated, truncated, info = small_step(key, state, action, params)
        assert reward.dtype == jnp.float32
        np.testing.assert_allclose(float(reward), expected, rtol=0, atol=1e-6, err_msg=f"step {t}")
        last = t == len(plan) - 1
        assert (bool(terminated), bool(truncated)) == (last, False), f"step {t}"
        if t == 7:
            np.testing.assert_array_equal(state.boxes, before.boxes)
            np.testing.assert_array_equal(state.player, before.player)
    final = info["final_observation"]
    assert final[2, 3, sokoban.CHANNELS.index("box_on_target")] == 1
    assert final[3, 5, sokoban.CHANNELS.index("box_on_target")] == 1
    assert int(state.time) == 0 and not np.array_equal(final, obs)
    assert np.asarray(obs).sum() == 7 * 7


def test_time_limit_truncates_only(small_env, small_step):
    state = state_from_text(HAND_LEVEL)
    start_obs = small_env.observation(state)
    params = SMALL.replace(max_steps_in_episode=3)
    for t in range(3):  # walking into the wall on the player's left
        obs, state, reward, terminated, truncated, info = small_step(
            jax.random.key(t), state, LEFT, params
        )
        assert float(reward) == pytest.approx(-0.1)
        assert not bool(terminated)
        assert bool(truncated) == (t == 2)
    np.testing.assert_array_equal(info["final_observation"], start_obs)
    assert int(state.time) == 0


def test_render_draws_every_cell(small_env):
    state = state_from_text(HAND_LEVEL)
    image = np.asarray(small_env.render(state, SMALL, tile_size=6))
    assert image.shape == (42, 42, 3) and image.dtype == np.uint8
    centres = image[3::6, 3::6]  # [7, 7, 3], the middle pixel of each tile
    player, box, target, floor = centres[2, 1], centres[2, 2], centres[2, 3], centres[1, 1]
    wall = centres[0, 0]
    assert len({tuple(c) for c in (player, box, target, floor, wall)}) == 5


# ---------------------------------------------------------------------------- properties


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    actions=st.lists(st.integers(0, 3), min_size=40 * BATCH, max_size=40 * BATCH),
    time_limit=st.integers(3, 30),
)
def test_rollouts_keep_the_room_consistent(small_rollout, seed, actions, time_limit):
    """Player and boxes stay on floor, apart, inside the room; boxes are never lost."""
    actions = jnp.asarray(actions, jnp.int32).reshape(40, BATCH)
    params = SMALL.replace(max_steps_in_episode=time_limit)
    _, _, records = jax.device_get(small_rollout(jax.random.key(seed), actions, params))
    state = records["state"]
    walls, boxes = state.walls, state.boxes  # [T, B, H, W]
    rows, cols = state.player[..., 0], state.player[..., 1]  # [T, B]
    t_index, b_index = np.indices(rows.shape)
    assert not walls[t_index, b_index, rows, cols].any()  # the player is never in a wall
    assert not boxes[t_index, b_index, rows, cols].any()  # nor on a box
    assert not (boxes & walls).any()  # a box never enters a wall
    assert (boxes.sum(axis=(2, 3)) == SMALL.num_boxes).all()
    border = np.ones((7, 7), bool)
    border[1:-1, 1:-1] = False
    assert walls[..., border].all()  # the room stays closed, so nothing leaves it
    assert (state.targets.sum(axis=(2, 3)) == SMALL.num_boxes).all()
    # Between resets only the player and boxes change.
    same_episode = state.time[1:] > 0
    np.testing.assert_array_equal(walls[1:][same_episode], walls[:-1][same_episode])
    obs = records["obs"]
    np.testing.assert_array_equal(obs.sum(-1), 1.0)


@settings(max_examples=25, deadline=None)
@given(level=st.integers(0, MAX_INDEX))
def test_generated_levels_are_solvable_and_not_trivial(small_generate, level):
    state, attempt = jax.device_get(small_generate(jnp.int32(level), SMALL))
    assert attempt >= 1, "no generation attempt was accepted"
    assert not (state.boxes & state.targets).any(), "every box starts off its target"
    assert not state.walls[tuple(state.player)] and not state.boxes[tuple(state.player)]
    length = solve(state)
    assert length is not None, f"level {level} is unsolvable"
    assert length >= 1


@settings(max_examples=20, deadline=None)
@given(level=st.integers(0, MAX_INDEX), other=st.integers(0, MAX_INDEX))
def test_level_index_decides_the_level(small_env, small_generate, level, other):
    first, _ = small_generate(jnp.int32(level), SMALL)
    again, _ = small_generate(jnp.int32(level), SMALL.replace(max_steps_in_episode=7))
    assert jax.tree.all(jax.tree.map(np.array_equal, first, again))
    if other != level:
        second, _ = small_generate(jnp.int32(other), SMALL)
        layout = lambda s: (s.walls, s.targets, s.boxes, s.player)
        assert not jax.tree.all(jax.tree.map(np.array_equal, layout(first), layout(second)))


def test_unbounded_levels_are_distinct(default_env, default_reset):
    """64 resets with `num_levels=0` draw 64 different indices and 64 different layouts."""
    _, params = default_env
    _, state = jax.device_get(default_reset(jax.random.split(jax.random.key(7), 64), params))
    assert len(set(state.level.tolist())) == 64
    layouts = {
        (w.tobytes(), t.tobytes(), b.tobytes(), p.tobytes())
        for w, t, b, p in zip(state.walls, state.targets, state.boxes, state.player, strict=True)
    }
    assert len(layouts) == 64
    assert not (state.boxes & state.targets).any()


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    start_level=st.integers(0, 2**30),
    num_levels=st.integers(1, 50),
)
def test_levels_come_from_the_configured_range(small_reset, seed, start_level, num_levels):
    params = SMALL.replace(start_level=start_level, num_levels=num_levels)
    _, state = jax.device_get(small_reset(jax.random.split(jax.random.key(seed), 32), params))
    assert (state.level >= start_level).all()
    assert (state.level < start_level + num_levels).all()
    if num_levels == 1:
        assert (state.walls == state.walls[0]).all() and (state.boxes == state.boxes[0]).all()


def test_few_levels_repeat_exactly(small_reset, small_generate):
    """With `num_levels=3`, every reset is one of the three generated levels."""
    params = SMALL.replace(num_levels=3, start_level=1000)
    _, states = jax.device_get(small_reset(jax.random.split(jax.random.key(0), BATCH * 8), params))
    assert set(states.level.tolist()) == {1000, 1001, 1002}
    for i in range(BATCH * 8):
        expected, _ = small_generate(states.level[i], SMALL)
        np.testing.assert_array_equal(states.boxes[i], expected.boxes)
        np.testing.assert_array_equal(states.walls[i], expected.walls)
