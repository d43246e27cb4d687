"""The pgx Go adapter keeps the jaxmb contract and plays the same games as pgx itself.

One compiled program (`out`, module-scoped) plays random legal games on `NUM_ENVS` boards
under `jax.jit(jax.vmap(...))` for `NUM_STEPS` moves, next to `pgx.make("go_9x9")` driven
with the same keys and actions and reset the way the adapter documents (`key_step,
key_reset = split(key)`). Each board passes with its own probability, so games end by the
step cap (162 moves), by two passes, and in between. Hand-played positions, stepped with
one jitted `step` (`step` fixture), check reward signs, illegal moves and perspective.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("pgx")

import jaxmb.envs  # noqa: E402
from jaxmb.envs.pgx_adapter import GoParams, PgxGoEnv  # noqa: E402

ENV_ID = "pgx:go_9x9"
PASS = 81
NUM_STEPS = 400
PASS_PROBABILITIES = (0.0, 0.0, 0.02, 0.1, 0.3, 0.6)
NUM_ENVS = len(PASS_PROBABILITIES)
STEP_CAP = 162


def _random_action(key: jax.Array, mask: jax.Array, pass_probability: jax.Array) -> jax.Array:
    key_move, key_pass = jax.random.split(key)
    move = jax.random.categorical(key_move, jnp.where(mask, 0.0, -jnp.inf))
    return jnp.where(jax.random.uniform(key_pass) < pass_probability, PASS, move).astype(jnp.int32)


def _rollout(env: PgxGoEnv, key: jax.Array, pass_probability: jax.Array, params) -> dict:
    import pgx

    reference = pgx.make("go_9x9")
    key_reset, key_rollout = jax.random.split(key)
    reset_obs, state = env.reset(key_reset, params)
    ref_state = reference.init(key_reset)

    def body(carry, key):
        state, ref_state = carry
        key_action, key = jax.random.split(key)
        mask = env.action_mask(state, params)
        action = _random_action(key_action, mask, pass_probability)
        mover = env.to_play(state)
        obs, next_state, reward, terminated, truncated, info = env.step(key, state, action, params)

        key_step, key_reset = jax.random.split(key)
        ref_next = reference.step(ref_state, action, key_step)
        ref_done = ref_next.terminated | ref_next.truncated
        ref_after = jax.lax.cond(ref_done, lambda: reference.init(key_reset), lambda: ref_next)
        record = {
            "mover": mover,
            "mask": mask,
            "action": action,
            "obs": obs,
            "reward": reward,
            "terminated": terminated,
            "truncated": truncated,
            "final_observation": info["final_observation"],
            "to_play": info["to_play"],
            "state_to_play": env.to_play(next_state),
            "ref_mask": ref_state.legal_action_mask,
            "ref_rewards": ref_next.rewards,
            "ref_terminated": ref_next.terminated,
            "ref_truncated": ref_next.truncated,
            "ref_final_obs": ref_next.observation,
            "ref_game_length": ref_next._step_count,
            "ref_obs": ref_after.observation,
            "ref_to_play": ref_after.current_player,
        }
        return (next_state, ref_after), record

    _, out = jax.lax.scan(body, (state, ref_state), jax.random.split(key_rollout, NUM_STEPS))
    return {"reset_obs": reset_obs, "ref_reset_obs": ref_state.observation, **out}


@pytest.fixture(scope="module")
def env_and_params():
    return jaxmb.envs.make(ENV_ID)


@pytest.fixture(scope="module")
def out(env_and_params):
    env, params = env_and_params
    keys = jax.random.split(jax.random.key(0), NUM_ENVS)
    program = jax.jit(jax.vmap(lambda k, p: _rollout(env, k, p, params)))
    result = jax.device_get(program(keys, jnp.asarray(PASS_PROBABILITIES)))
    unbatched_time = {"reset_obs", "ref_reset_obs"}
    # [T, B, ...] like a `VectorEnv` rollout.
    return {k: v if k in unbatched_time else np.swapaxes(v, 0, 1) for k, v in result.items()}


@pytest.fixture(scope="module")
def step(env_and_params):
    env, params = env_and_params
    return jax.jit(lambda key, state, action: env.step(key, state, action, params))


def test_spaces_and_dtypes(env_and_params, out):
    env, params = env_and_params
    assert env.id == ENV_ID and env.num_actions == 82
    assert params == GoParams(komi=7.5, max_termination_steps=STEP_CAP)
    assert env.observation_space.shape == (9, 9, 17)
    for name in ("reset_obs", "obs", "final_observation"):
        assert out[name].dtype == np.float32, name
        for obs in out[name].reshape(-1, 9, 9, 17):
            assert env.observation_space.contains(obs), name
    for name, dtype in (("reward", np.float32), ("terminated", np.bool_), ("truncated", np.bool_)):
        assert out[name].shape == (NUM_STEPS, NUM_ENVS) and out[name].dtype == dtype, name
    assert out["mask"].shape == (NUM_STEPS, NUM_ENVS, 82) and out["mask"].dtype == np.bool_
    assert out["mask"][..., PASS].all()
    assert out["to_play"].dtype == np.int32


def test_matches_pgx(out):
    np.testing.assert_array_equal(out["reset_obs"], out["ref_reset_obs"])
    np.testing.assert_array_equal(out["mask"], out["ref_mask"])
    np.testing.assert_array_equal(out["obs"], out["ref_obs"])
    np.testing.assert_array_equal(out["final_observation"], out["ref_final_obs"])
    np.testing.assert_array_equal(out["terminated"], out["ref_terminated"])
    np.testing.assert_array_equal(out["truncated"], out["ref_truncated"])
    np.testing.assert_array_equal(out["to_play"], out["ref_to_play"])
    np.testing.assert_array_equal(out["to_play"], out["state_to_play"])
    mover_reward = np.take_along_axis(out["ref_rewards"], out["mover"][..., None], -1)[..., 0]
    np.testing.assert_array_equal(out["reward"], mover_reward)


def test_reward_is_the_movers_and_zero_sum(out):
    rewards = out["ref_rewards"]
    np.testing.assert_array_equal(rewards.sum(-1), 0.0)
    opponent_reward = np.take_along_axis(rewards, 1 - out["mover"][..., None], -1)[..., 0]
    np.testing.assert_array_equal(opponent_reward, -out["reward"])
    # Go pays +-1 exactly when a game ends (komi 7.5: no draws), and both signs occur.
    np.testing.assert_array_equal(out["reward"] != 0, out["terminated"])
    assert set(np.unique(out["reward"][out["terminated"]])) == {-1.0, 1.0}


def test_to_play_alternates_within_a_game(out):
    done = out["terminated"] | out["truncated"]
    np.testing.assert_array_equal(out["to_play"][~done], 1 - out["mover"][~done])
    # The next step's mover is the player `info["to_play"]` named.
    np.testing.assert_array_equal(out["mover"][1:], out["to_play"][:-1])
    # After a reset, either player may open the next game.
    assert len(np.unique(out["to_play"][done])) == 2


def test_games_end_by_the_step_cap_and_by_passes(out):
    assert not out["truncated"].any()
    lengths = out["ref_game_length"][out["terminated"]]
    assert (lengths <= STEP_CAP).all()
    assert (lengths == STEP_CAP).any(), "no game reached the step cap"
    assert (lengths < STEP_CAP).any(), "no game ended before the step cap"
    # Reaching the cap is a scored terminal, not a truncation.
    at_cap = out["terminated"] & (out["ref_game_length"] == STEP_CAP)
    assert (np.abs(out["reward"][at_cap]) == 1.0).all()


def test_auto_reset_keeps_the_final_observation(out):
    done = out["terminated"] | out["truncated"]
    assert done.sum() >= NUM_ENVS
    np.testing.assert_array_equal(out["final_observation"][~done], out["obs"][~done])
    # A new game's board is empty: only the colour plane (16) can be set.
    assert not out["obs"][done][..., :16].any()
    # Games of some length leave stones in their final observation.
    long_games = done & (out["ref_game_length"] >= 20)
    assert long_games.sum() >= 2
    assert out["final_observation"][long_games][..., :16].any(axis=(1, 2, 3)).all()


def _play(step, state, actions, key=1):
    results = []
    for i, action in enumerate(actions):
        result = step(jax.random.key(key + i), state, jnp.int32(action))
        state = result[1]
        results.append(result)
    return results


def test_reward_signs_of_hand_played_games(env_and_params, step):
    env, params = env_and_params
    _, start = env.reset(jax.random.key(5), params)
    # Two passes on an empty board: komi makes white, who passed last, the winner.
    *_, (_, _, reward, terminated, _, _) = _play(step, start, [PASS, PASS])
    assert terminated and reward == 1.0
    # Black plays one stone, then both pass: black owns the board and passed last.
    *_, (_, _, reward, terminated, _, _) = _play(step, start, [40, PASS, PASS])
    assert terminated and reward == 1.0
    # One stone each, one more for black, then white and black pass: white wins on komi
    # (2 - 7.5 < 1), so black, who ended the game, loses.
    *_, (_, _, reward, terminated, _, _) = _play(step, start, [40, 10, 50, PASS, PASS])
    assert terminated and reward == -1.0
    # A single pass ends nothing and pays nothing.
    (_, state, reward, terminated, _, info) = _play(step, start, [PASS])[0]
    assert not terminated and reward == 0.0
    assert info["to_play"] == 1 - start.current_player == env.to_play(state)


def test_illegal_action_ends_the_game_against_the_mover(env_and_params, step):
    env, params = env_and_params
    _, start = env.reset(jax.random.key(6), params)
    first, second = _play(step, start, [40, 40])  # white plays on black's stone
    state = first[1]
    assert not env.action_mask(state, params)[40]
    _, next_state, reward, terminated, truncated, info = second
    assert terminated and not truncated and reward == -1.0
    # The game restarted: an empty board, every point legal again.
    assert env.action_mask(next_state, params).all()
    assert info["final_observation"][..., :16].any()


def test_observation_is_from_the_player_to_move(env_and_params, step):
    env, params = env_and_params
    _, start = env.reset(jax.random.key(7), params)
    obs, _, _, _, _, _ = _play(step, start, [40])[0]  # black at the centre (4, 4)
    # White is to move: the stone is the opponent's (channel 1), not its own (channel 0),
    # and channel 16 says the player to move is white.
    assert obs[4, 4, 1] == 1.0 and obs[..., 0].sum() == 0.0 and obs[..., 1].sum() == 1.0
    assert (obs[..., 16] == 1.0).all()
    obs, _, _, _, _, _ = _play(step, start, [40, PASS])[1]  # black to move again
    assert obs[4, 4, 0] == 1.0 and obs[..., 1].sum() == 0.0
    assert (obs[..., 16] == 0.0).all()


def test_params_are_static_and_checked(env_and_params):
    env, params = env_and_params
    assert jax.tree.leaves(params) == []
    short, short_params = jaxmb.envs.make(ENV_ID, komi=0.5, max_termination_steps=4)
    assert short.pgx_env._game.komi == 0.5 and short_params.max_termination_steps == 4
    with pytest.raises(ValueError, match="komi"):
        env.reset(jax.random.key(0), short_params)
    with pytest.raises(ValueError, match="unknown param"):
        jaxmb.envs.make(ENV_ID, komii=6.5)


def test_no_pass_before_masks_early_passes():
    env, params = jaxmb.envs.make(ENV_ID, no_pass_before=3)
    assert params.no_pass_before == 3 and env.default_params() == params
    step = jax.jit(lambda key, state, action: env.step(key, state, action, params))
    _, start = env.reset(jax.random.key(8), params)
    mask = env.action_mask(start, params)
    assert not mask[PASS] and mask[:PASS].all()
    played = _play(step, start, [40, 41, 42, PASS])
    # Masked for moves 0, 1 and 2 (0, 1 and 2 moves played), legal from the fourth.
    assert [bool(env.action_mask(r[1], params)[PASS]) for r in played[:3]] == [False, False, True]
    _, state, reward, terminated, _, _ = played[3]
    assert not terminated and reward == 0.0 and env.action_mask(state, params)[PASS]
    # An early pass is an illegal move: the game ends and the passer loses, as in pgx.
    _, restarted, reward, terminated, _, _ = _play(step, start, [PASS])[0]
    assert terminated and reward == -1.0
    # The new game starts under the same rule.
    assert not env.action_mask(restarted, params)[PASS]


def test_no_pass_before_keeps_pass_when_it_is_the_only_move():
    env, params = jaxmb.envs.make(ENV_ID, no_pass_before=STEP_CAP)
    _, start = env.reset(jax.random.key(9), params)
    # pgx's own mask of the empty board (pass legal), and of a board where every point is
    # occupied or illegal, on which pass is the only move and so stays legal.
    pgx_mask = start.legal_action_mask.at[PASS].set(True)
    assert not env._restrict_pass(start.replace(legal_action_mask=pgx_mask)).legal_action_mask[PASS]
    blocked = start.replace(legal_action_mask=pgx_mask.at[:PASS].set(False))
    assert env._restrict_pass(blocked).legal_action_mask[PASS]
    with pytest.raises(ValueError, match="no_pass_before"):
        jaxmb.envs.make(ENV_ID, no_pass_before=-1)
