"""Value targets and unroll masks against hand-computed numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmb.targets import nstep_value_targets, unroll_masks

GAMMA = 0.9


def _targets(rewards, terminated, truncated, values, final_values, td, positions):
    f = lambda *a: nstep_value_targets(  # noqa: E731
        *map(jnp.asarray, a), discount=GAMMA, td_steps=td, num_positions=positions
    )
    return np.asarray(jax.jit(f)(rewards, terminated, truncated, values, final_values))


def test_no_episode_end():
    r = [1.0, 2.0, 3.0, 4.0, 5.0]
    v = [10.0, 20.0, 30.0, 40.0, 50.0]
    z = _targets(r, [0] * 5, [0] * 5, v, [0.0] * 5, td=2, positions=3)
    # z0 = 1 + .9*2 + .81*30; z1 = 2 + .9*3 + .81*40; z2 = 3 + .9*4 + .81*50
    np.testing.assert_allclose(z, [1 + 1.8 + 24.3, 2 + 2.7 + 32.4, 3 + 3.6 + 40.5], rtol=1e-6)


def test_window_crossing_termination():
    # Transition 1 terminates: no bootstrap past it.
    r = [1.0, 2.0, 3.0, 4.0, 5.0]
    term = [0, 1, 0, 0, 0]
    v = [10.0, 20.0, 30.0, 40.0, 50.0]
    z = _targets(r, term, [0] * 5, v, [99.0] * 5, td=3, positions=2)
    # z0 = 1 + .9*2 (episode ends); z1 = 2 (ends immediately).
    np.testing.assert_allclose(z, [2.8, 2.0], rtol=1e-6)


def test_window_crossing_truncation():
    # Transition 1 is cut by a time limit: bootstrap from the final observation's value (7).
    r = [1.0, 2.0, 3.0, 4.0, 5.0]
    trunc = [0, 1, 0, 0, 0]
    v = [10.0, 20.0, 30.0, 40.0, 50.0]
    fv = [0.0, 7.0, 0.0, 0.0, 0.0]
    z = _targets(r, [0] * 5, trunc, v, fv, td=3, positions=2)
    # z0 = 1 + .9*2 + .81*7 ; z1 = 2 + .9*7 (and never the reset obs' value 30).
    np.testing.assert_allclose(z, [1 + 1.8 + 0.81 * 7, 2 + 0.9 * 7], rtol=1e-6)


def test_terminated_wins_over_truncated():
    z = _targets([1.0, 1.0, 1.0], [1, 0, 0], [1, 0, 0], [5.0] * 3, [100.0] * 3, td=2, positions=1)
    np.testing.assert_allclose(z, [1.0])


def test_too_short_window_raises():
    with pytest.raises(ValueError, match="too short"):
        _targets([1.0] * 3, [0] * 3, [0] * 3, [0.0] * 3, [0.0] * 3, td=3, positions=2)


def test_unroll_masks_termination():
    m = jax.jit(unroll_masks, static_argnums=2)(jnp.array([0, 1, 0, 0]), jnp.zeros(4, bool), 4)
    np.testing.assert_array_equal(m["same_episode"], [1, 1, 0, 0])
    np.testing.assert_array_equal(m["absorbing"], [0, 0, 1, 1])
    np.testing.assert_array_equal(m["value"], [1, 1, 1, 1])
    np.testing.assert_array_equal(m["model"], [0, 1, 1, 1])


def test_unroll_masks_truncation_masks_next_episode():
    m = unroll_masks(jnp.zeros(4, bool), jnp.array([0, 1, 0, 0]), 4)
    np.testing.assert_array_equal(m["same_episode"], [1, 1, 0, 0])
    np.testing.assert_array_equal(m["absorbing"], [0, 0, 0, 0])
    np.testing.assert_array_equal(m["value"], [1, 1, 0, 0])
    # The truncated transition itself (into position 2) is still a real transition.
    np.testing.assert_array_equal(m["model"], [0, 1, 1, 0])


def test_unroll_masks_truncation_then_termination_is_not_absorbing():
    m = unroll_masks(jnp.array([0, 0, 1, 0]), jnp.array([1, 0, 0, 0]), 4)
    np.testing.assert_array_equal(m["absorbing"], [0, 0, 0, 0])
    np.testing.assert_array_equal(m["value"], [1, 0, 0, 0])


def test_targets_vmap_matches_loop():
    key = jax.random.key(0)
    r = jax.random.normal(key, (6, 8))
    term = jax.random.bernoulli(jax.random.key(1), 0.2, (6, 8))
    trunc = jax.random.bernoulli(jax.random.key(2), 0.2, (6, 8))
    v = jax.random.normal(jax.random.key(3), (6, 8))
    fv = jax.random.normal(jax.random.key(4), (6, 8))
    f = lambda *a: nstep_value_targets(*a, discount=GAMMA, td_steps=3, num_positions=4)  # noqa
    batched = jax.vmap(f)(r, term, trunc, v, fv)
    for i in range(6):
        np.testing.assert_allclose(batched[i], f(r[i], term[i], trunc[i], v[i], fv[i]), rtol=1e-6)
