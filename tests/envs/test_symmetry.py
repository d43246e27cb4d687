"""Board symmetries (`jaxmb.envs.symmetry`) against numpy's rotations and against pgx Go.

The reference test plays random legal games of 9x9 Go through the adapter, then replays
them with every transform applied to the actions: each replay must show the transformed
observations and legal masks and the same rewards and game ends, captures and scoring
included (games run past the 162-move cap, so they are scored and restarted).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmb.envs.symmetry import BoardSymmetries

NUM_STEPS = 200
PASS_PROBABILITY = 0.03


def test_transforms_are_the_eight_rotations_and_reflections():
    sym = BoardSymmetries(3, 10)
    board = np.arange(9).reshape(3, 3, 1)
    seen = set()
    for g in range(sym.num):
        out = np.asarray(sym.obs(jnp.asarray(board), jnp.int32(g)))[..., 0]
        seen.add(out.tobytes())
        expected = np.rot90(board[..., 0] if g < 4 else board[..., 0].T, g % 4)
        np.testing.assert_array_equal(out, expected)
        image = np.asarray(sym.actions(jnp.arange(10), jnp.int32(g)))
        assert sorted(image.tolist()) == list(range(10)), "not a permutation"
        assert image[9] == 9, "the extra action (pass) moved"
        # A stone placed at action a shows at the transformed board's point image[a].
        for a in range(9):
            assert out.reshape(-1)[image[a]] == a
        values = np.arange(10) * 10
        moved = np.asarray(sym.action_values(jnp.asarray(values), jnp.int32(g)))
        np.testing.assert_array_equal(moved[image], values)
    assert len(seen) == 8
    np.testing.assert_array_equal(
        np.asarray(sym.obs(jnp.asarray(board), jnp.int32(1)))[..., 0],
        [[2, 5, 8], [1, 4, 7], [0, 3, 6]],
    )


def test_transforms_take_batches_and_traced_indices():
    sym = BoardSymmetries(4, 17)
    obs = jax.random.uniform(jax.random.key(0), (5, 3, 4, 4, 2))
    g = jnp.arange(5) % 8
    out = jax.jit(jax.vmap(sym.obs))(obs, g)
    for i in range(5):
        np.testing.assert_array_equal(out[i], sym.obs(obs[i], g[i]))
    with pytest.raises(ValueError, match="cannot cover"):
        BoardSymmetries(9, 80)


def test_go_games_replayed_under_each_symmetry_match_pgx():
    pytest.importorskip("pgx")
    import jaxmb.envs

    env, params = jaxmb.envs.make("pgx:go_9x9")
    sym = env.symmetries
    assert sym.num == 8 and sym.num_actions == env.num_actions

    def play(key):
        """A random legal game: actions, observations, masks, rewards, ends."""
        reset_key, key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)

        def one(carry, key):
            obs, state = carry
            act_key, pass_key, step_key = jax.random.split(key, 3)
            mask = env.action_mask(state, params)
            action = jax.random.categorical(act_key, jnp.where(mask[:-1], 0.0, -jnp.inf))
            action = jnp.where(
                (jax.random.uniform(pass_key) < PASS_PROBABILITY) | ~jnp.any(mask[:-1]),
                env.num_actions - 1,
                action,
            ).astype(jnp.int32)
            next_obs, state, reward, terminated, _, _ = env.step(step_key, state, action, params)
            return (next_obs, state), (obs, mask, action, reward, terminated)

        keys = jax.random.split(key, NUM_STEPS)
        _, trace = jax.lax.scan(one, (obs, state), keys)
        return reset_key, keys, trace

    def replay(reset_key, keys, actions, g):
        obs, state = env.reset(reset_key, params)

        def one(carry, inputs):
            obs, state = carry
            key, action = inputs
            step_key = jax.random.split(key, 3)[2]
            mask = env.action_mask(state, params)
            action = sym.actions(action, g)
            next_obs, state, reward, terminated, _, _ = env.step(step_key, state, action, params)
            return (next_obs, state), (obs, mask, reward, terminated)

        return jax.lax.scan(one, (obs, state), (keys, actions))[1]

    for seed in range(2):
        reset_key, keys, (obs, mask, actions, reward, terminated) = jax.jit(play)(
            jax.random.key(seed)
        )
        assert int(jnp.sum(terminated)) >= 1, "no game ended: the test saw no scoring"
        replays = jax.jit(jax.vmap(replay, in_axes=(None, None, None, 0)))(
            reset_key, keys, actions, jnp.arange(sym.num)
        )
        for g in range(sym.num):
            obs_g, mask_g, reward_g, terminated_g = (x[g] for x in replays)
            np.testing.assert_array_equal(obs_g, sym.obs(obs, jnp.int32(g)))
            np.testing.assert_array_equal(mask_g, sym.action_values(mask, jnp.int32(g)))
            np.testing.assert_array_equal(reward_g, reward)
            np.testing.assert_array_equal(terminated_g, terminated)
