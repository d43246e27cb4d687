"""`jaxmb:MiniPacman-v0`: the contract under jit and vmap, rewards per mode on hand-set
states, and properties of the procedural levels (connected, deterministic, in range).

Compiling dominates the run time, so every test reads a few programs compiled once per
module (with the fast compile options of tests/conftest.py), and params are passed as arrays so
that new values never retrace.
"""

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
from jaxmb.envs import core
from jaxmb.envs.minipacman import MiniPacman, MiniPacmanParams

# Weber et al. 2017, appendix (MiniPacman tasks): per step, food, power pill, eat ghost,
# killed by ghost. Written out here apart from the module's table, so a typo in either fails.
PAPER_REWARDS = {
    "regular": (0.0, 1.0, 2.0, 5.0, 0.0),
    "avoid": (0.1, -0.1, -5.0, -10.0, -20.0),
    "hunt": (0.0, 0.0, 1.0, 10.0, -20.0),
    "ambush": (0.0, -0.1, 0.0, 10.0, -20.0),
    "rush": (0.0, -0.1, 10.0, 0.0, 0.0),
}
MODES = list(PAPER_REWARDS)
MOVES = {1: (-1, 0), 2: (1, 0), 3: (0, -1), 4: (0, 1)}  # up, down, left, right
ROLLOUT_STEPS = 40


def _arrays(params: MiniPacmanParams) -> MiniPacmanParams:
    """Params as int32/float32 arrays: one trace serves every value."""
    return jax.tree.map(
        lambda x: jnp.asarray(x, jnp.float32 if isinstance(x, float) else jnp.int32), params
    )


ENV = MiniPacman()
PARAMS = _arrays(MiniPacmanParams(max_steps_in_episode=30, num_levels=50, start_level=1000))
STILL = dataclasses.replace(PARAMS, ghost_speed=jnp.float32(0.0))  # ghosts never move


def _compile(fn):
    return jax.jit(fn)


step = _compile(ENV.step)
reset = _compile(ENV.reset)
layout = _compile(ENV.level_layout)
observe = _compile(ENV.observe)


def _rollout(key, actions, params):
    _, state = ENV.reset(key, params)

    def body(state, inputs):
        step_key, action = inputs
        obs, next_state, reward, terminated, truncated, info = ENV.step(
            step_key, state, action, params
        )
        record = (state, next_state, reward, terminated, truncated)
        return next_state, record

    keys = jax.random.split(jax.random.fold_in(key, 1), actions.shape[0])
    return jax.lax.scan(body, state, (keys, actions))[1]


rollout = _compile(_rollout)


# --------------------------------------------------------------------------- helpers


def _bfs(walls: np.ndarray, source) -> np.ndarray:
    """Maze distances from `source` (-1: unreachable), by plain breadth-first search."""
    distance = np.full(walls.shape, -1)
    distance[tuple(source)] = 0
    queue = collections.deque([tuple(source)])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES.values():
            nr, nc = r + dr, c + dc
            if not walls[nr, nc] and distance[nr, nc] < 0:
                distance[nr, nc] = distance[r, c] + 1
                queue.append((nr, nc))
    return distance


@functools.cache
def _geometry(level: int = 3):
    """Level `level`'s start state, Pacman's first free move `(action, cell)`, and the free
    cells at least 6 steps from Pacman, nearest first."""
    state = jax.device_get(layout(jnp.int32(level), PARAMS))
    pacman = state.pacman
    action = next(a for a, d in MOVES.items() if not state.walls[tuple(pacman + d)])
    target = tuple(int(x) for x in pacman + MOVES[action])
    distance = _bfs(state.walls, pacman)
    far = sorted(
        (int(distance[tuple(c)]), tuple(int(x) for x in c)) for c in np.argwhere(distance >= 6)
    )
    return state, action, target, [cell for _, cell in far]


def _hand_state(*, food=(), pills=(), ghosts=None, power_timer=0):
    """The `_geometry` level with food and pills only on the given cells plus one food cell
    far away (so the level is not cleared), and the ghosts parked on the farthest cells
    unless given (their homes are always there)."""
    state, _, _, far = _geometry()
    food_grid = np.zeros_like(state.walls)
    for cell in (*food, far[0]):
        food_grid[cell] = True
    pill_grid = np.zeros_like(state.walls)
    for cell in pills:
        pill_grid[cell] = True
    homes = far[-ENV.num_ghosts :]
    return jax.tree.map(
        jnp.asarray,
        state.replace(
            food=food_grid,
            pills=pill_grid,
            ghosts=np.asarray(homes if ghosts is None else ghosts, np.int32),
            ghost_homes=np.asarray(homes, np.int32),
            power_timer=np.int32(power_timer),
        ),
    )


def _with_mode(params, mode: str):
    return dataclasses.replace(params, mode=jnp.int32(MODES.index(mode)))


KEY = jax.random.key(0)


# --------------------------------------------------------------------------- contract


def test_make_builds_the_env_with_overridden_params():
    env, params = jaxmb.envs.make("jaxmb:MiniPacman-v0", num_levels=100, mode=2)
    assert core.missing_env_members(env) == []
    assert env.id == "jaxmb:MiniPacman-v0" and env.num_actions == 5
    assert (params.num_levels, params.mode) == (100, 2)
    assert env.default_params() == params
    assert env.observation_space.shape == (15, 19, 7)
    with pytest.raises(ValueError, match="unknown param"):
        jaxmb.envs.make("jaxmb:MiniPacman-v0", num_level=3)


def test_reset_and_step_under_jit_and_vmap_stay_in_their_spaces():
    batch = 4
    keys = jax.random.split(KEY, batch)
    batched_reset = jax.jit(jax.vmap(ENV.reset, in_axes=(0, None)))
    batched_step = jax.jit(jax.vmap(ENV.step, in_axes=(0, 0, 0, None)))
    obs, state = batched_reset(keys, PARAMS)
    assert obs.shape == (batch, 15, 19, 7) and obs.dtype == jnp.float32
    actions = jnp.arange(batch, dtype=jnp.int32)
    out = batched_step(keys, state, actions, PARAMS)
    obs, _, reward, terminated, truncated, info = out
    assert reward.dtype == jnp.float32 and reward.shape == (batch,)
    assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
    for i in range(batch):
        assert ENV.observation_space.contains(np.asarray(obs[i]))
        assert ENV.observation_space.contains(np.asarray(info["final_observation"][i]))
        assert ENV.action_space.contains(np.int32(actions[i]))
    mask = jax.vmap(ENV.action_mask, in_axes=(0, None))(state, PARAMS)
    assert mask.shape == (batch, 5) and bool(mask.all())


def test_params_vmap_one_mode_per_env():
    _, action, _, _ = _geometry()
    params = jax.tree.map(lambda x: jnp.broadcast_to(x, (5,)), STILL)
    params = dataclasses.replace(params, mode=jnp.arange(5, dtype=jnp.int32))
    batched = _compile(jax.vmap(ENV.step, in_axes=(None, None, None, 0)))
    rewards = batched(KEY, _hand_state(), action, params)
    np.testing.assert_allclose(rewards[2], [PAPER_REWARDS[m][0] for m in MODES], atol=1e-6)


def test_float_params_from_yaml_work():
    """Config overrides arrive as floats (`env.params` is `dict[str, float]`)."""
    _, action, _, _ = _geometry()
    params = dataclasses.replace(MiniPacmanParams(), mode=1.0, ghost_speed=0.0, power_steps=20.0)
    reward = _compile(ENV.step)(KEY, _hand_state(), action, params)[2]
    assert float(reward) == pytest.approx(0.1)


def test_observation_channels_describe_the_state():
    state = _hand_state(power_timer=5)
    obs = np.asarray(observe(state, PARAMS))
    np.testing.assert_array_equal(obs[..., 0], np.asarray(state.walls))
    np.testing.assert_array_equal(obs[..., 1], np.asarray(state.food))
    assert obs[..., 3].sum() == 1 and obs[(*np.asarray(state.pacman), 3)] == 1
    assert obs[..., 4].sum() == 0 and obs[..., 5].sum() == ENV.num_ghosts  # all edible
    np.testing.assert_allclose(obs[..., 6], 5 / 20)


def test_walking_into_a_wall_is_a_noop():
    state = _hand_state()
    walls, pacman = np.asarray(state.walls), np.asarray(state.pacman)
    blocked = [a for a, d in MOVES.items() if walls[tuple(pacman + d)]]
    assert blocked, "every room of a 1-wide maze has a wall on some side"
    next_state = step(KEY, state, blocked[0], STILL)[1]
    np.testing.assert_array_equal(next_state.pacman, pacman)


def test_time_limit_truncates_only_and_keeps_the_final_observation():
    state = _hand_state()
    limited = dataclasses.replace(STILL, max_steps_in_episode=jnp.int32(3))
    flags = []
    for t in range(3):
        obs, next_state, _, terminated, truncated, info = step(jax.random.key(t), state, 0, limited)
        flags.append((bool(terminated), bool(truncated)))
        if t < 2:
            state = next_state
    assert flags == [(False, False), (False, False), (False, True)]
    assert int(next_state.time) == 0  # reset
    expected_final = observe(state.replace(time=state.time + 1), limited)
    np.testing.assert_array_equal(info["final_observation"], expected_final)
    np.testing.assert_array_equal(obs, observe(next_state, limited))


def test_render_is_an_rgb_picture():
    state = _hand_state()
    image = jax.jit(ENV.render)(state, PARAMS)
    k = ENV.render_scale
    assert image.shape == (15 * k, 19 * k, 3) and image.dtype == jnp.uint8
    np.testing.assert_array_equal(image[0, 0], [33, 33, 200])  # the corner is wall
    r, c = np.asarray(state.pacman)
    np.testing.assert_array_equal(image[r * k + k // 2, c * k + k // 2], [255, 230, 0])


# --------------------------------------------------------------------------- rewards


@pytest.mark.parametrize("mode", MODES)
def test_rewards_per_mode_on_hand_set_states(mode):
    per_step, food, pill, ghost, death = PAPER_REWARDS[mode]
    params = _with_mode(STILL, mode)
    _, action, target, far = _geometry()

    reward = step(KEY, _hand_state(), action, params)[2]
    assert float(reward) == pytest.approx(per_step)

    _, next_state, reward, terminated, _, _ = step(KEY, _hand_state(food=[target]), action, params)
    assert float(reward) == pytest.approx(per_step + food) and not terminated
    assert not next_state.food[target]

    state = _hand_state(pills=[target, far[1]])
    _, next_state, reward, terminated, _, _ = step(KEY, state, action, params)
    assert float(reward) == pytest.approx(per_step + pill) and not terminated
    assert int(next_state.power_timer) == int(params.power_steps)

    ghosts = [target, *far[-ENV.num_ghosts + 1 :]]
    state = _hand_state(ghosts=ghosts, power_timer=3)
    _, next_state, reward, terminated, _, _ = step(KEY, state, action, params)
    assert float(reward) == pytest.approx(per_step + ghost) and not terminated
    np.testing.assert_array_equal(next_state.ghosts[0], state.ghost_homes[0])
    assert bool(next_state.ghost_eaten[0]) and not next_state.ghost_eaten[1:].any()

    state = _hand_state(ghosts=ghosts)
    _, next_state, reward, terminated, truncated, info = step(KEY, state, action, params)
    assert float(reward) == pytest.approx(per_step + death)
    assert bool(terminated) and not truncated
    assert int(next_state.time) == 0  # auto-reset
    assert info["final_observation"][(*target, 3)] == 1  # Pacman where he died


def test_a_ghost_eaten_once_is_dangerous_until_the_next_pill():
    _, action, target, far = _geometry()
    state = _hand_state(ghosts=[target, *far[-ENV.num_ghosts + 1 :]], power_timer=3)
    state = state.replace(ghost_eaten=jnp.ones(ENV.num_ghosts, bool))
    obs = observe(state, STILL)
    assert obs[..., 4].sum() == ENV.num_ghosts and obs[..., 5].sum() == 0
    assert bool(step(KEY, state, action, STILL)[3])  # killed


def test_rush_terminates_on_the_last_pill_only():
    params = _with_mode(STILL, "rush")
    _, action, target, far = _geometry()
    assert not step(KEY, _hand_state(pills=[target, far[1]]), action, params)[3]
    _, _, reward, terminated, truncated, _ = step(KEY, _hand_state(pills=[target]), action, params)
    assert bool(terminated) and not truncated and float(reward) == pytest.approx(10.0)
    regular = _with_mode(STILL, "regular")
    assert not step(KEY, _hand_state(pills=[target]), action, regular)[3]


def test_eating_all_food_starts_the_next_level_in_the_same_episode():
    _, action, target, _ = _geometry()
    state = _hand_state(food=[target])
    state = state.replace(food=jnp.zeros_like(state.food).at[target].set(True), time=7)
    _, next_state, reward, terminated, truncated, _ = step(KEY, state, action, STILL)
    assert float(reward) == 1.0 and not terminated and not truncated
    assert int(next_state.time) == 8
    assert int(next_state.food.sum()) > 50
    assert 1000 <= int(next_state.level) < 1050


# --------------------------------------------------------------------------- ghosts


@settings(max_examples=10, deadline=None)
@given(level=st.integers(0, 10_000), seed=st.integers(0, 2**16))
def test_chasing_ghosts_close_in_and_edible_ones_do_not(level, seed):
    chasing = dataclasses.replace(
        PARAMS, ghost_speed=jnp.float32(1.0), ghost_chase_prob=jnp.float32(1.0)
    )
    state = layout(jnp.int32(level), chasing)
    walls = np.asarray(state.walls)
    distance = _bfs(walls, np.asarray(state.pacman))
    key = jax.random.key(seed)
    before = distance[tuple(np.asarray(state.ghosts).T)]
    after = distance[tuple(np.asarray(step(key, state, 0, chasing)[1].ghosts).T)]
    # Within the relaxation horizon (height + width) the greedy step is exact.
    near = before <= ENV.height + ENV.width
    np.testing.assert_array_equal(after[near], before[near] - 1)
    fleeing = state.replace(power_timer=jnp.int32(5))
    after = distance[tuple(np.asarray(step(key, fleeing, 0, chasing)[1].ghosts).T)]
    assert (after[near] >= before[near]).all()


# --------------------------------------------------------------------------- properties


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    actions=st.lists(st.integers(0, 4), min_size=ROLLOUT_STEPS, max_size=ROLLOUT_STEPS),
)
def test_nobody_stands_in_a_wall_and_food_never_grows_within_a_level(seed, actions):
    before, after, _, terminated, truncated = jax.device_get(
        rollout(jax.random.key(seed), jnp.asarray(actions, jnp.int32), PARAMS)
    )
    steps = range(ROLLOUT_STEPS)
    for t in steps:
        walls = after.walls[t]
        assert not walls[tuple(after.pacman[t])]
        assert not walls[tuple(after.ghosts[t].T)].any()
        assert not (after.food[t] & walls).any() and not (after.pills[t] & walls).any()
        food_before, food_after = before.food[t].sum(), after.food[t].sum()
        if not (terminated[t] or truncated[t]) and food_before > 1:
            assert food_after <= food_before
    assert np.all(after.time <= 30)


@settings(max_examples=20, deadline=None)
@given(level=st.integers(0, 2**31 - 2))
def test_every_maze_is_connected_closed_and_free_of_dead_ends(level):
    state = jax.device_get(layout(jnp.int32(level), PARAMS))
    walls = state.walls
    assert walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()
    distance = _bfs(walls, state.pacman)
    assert (distance[~walls] >= 0).all(), "some free cell is unreachable"
    free = ~walls
    rows, cols = np.nonzero(free)
    neighbours = sum(free[rows + dr, cols + dc] for dr, dc in MOVES.values())
    assert (neighbours >= 2).all(), "dead end"
    assert state.food.sum() + state.pills.sum() == free.sum() - 1  # all but Pacman's cell
    assert state.pills.sum() == 4 and not state.food[tuple(state.pacman)]


@settings(max_examples=15, deadline=None)
@given(
    level=st.integers(0, 2**31 - 2),
    other=st.integers(0, 2**31 - 2),
    seed=st.integers(0, 2**31 - 1),
)
def test_a_level_index_decides_the_maze(level, other, seed):
    first = jax.device_get(layout(jnp.int32(level), PARAMS))
    # Reset with a one-level range, any key, must land on exactly that layout.
    only = dataclasses.replace(PARAMS, num_levels=jnp.int32(1), start_level=jnp.int32(level))
    again = jax.device_get(reset(jax.random.key(seed), only)[1])
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)
    if other != level:
        assert (layout(jnp.int32(other), PARAMS).walls != first.walls).any()


@settings(max_examples=15, deadline=None)
@given(
    start_level=st.integers(0, 10**6),
    num_levels=st.integers(1, 1000),
    seed=st.integers(0, 2**31 - 1),
)
def test_levels_come_from_the_params_range_only(start_level, num_levels, seed):
    params = dataclasses.replace(
        PARAMS, start_level=jnp.int32(start_level), num_levels=jnp.int32(num_levels)
    )
    levels = jax.vmap(lambda k: reset(k, params)[1].level)(
        jax.random.split(jax.random.key(seed), 64)
    )
    assert ((levels >= start_level) & (levels < start_level + num_levels)).all()
    # Auto-reset and the next level draw from the same range.
    after = rollout(jax.random.key(seed), jnp.zeros(ROLLOUT_STEPS, jnp.int32), params)[1]
    assert ((after.level >= start_level) & (after.level < start_level + num_levels)).all()


def test_num_levels_zero_draws_any_level():
    params = dataclasses.replace(PARAMS, num_levels=jnp.int32(0))
    levels = np.asarray(jax.vmap(lambda k: reset(k, params)[1].level)(jax.random.split(KEY, 64)))
    assert len(set(levels.tolist())) == 64 and (levels >= 0).all()
    params = dataclasses.replace(PARAMS, num_levels=jnp.int32(1), start_level=jnp.int32(5))
    levels = jax.vmap(lambda k: reset(k, params)[1].level)(jax.random.split(KEY, 8))
    assert (levels == 5).all()
