"""In-graph replay: writes, window validity, never a window across the write head."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from jaxmb import replay


def _fill(num_envs, cap, num_writes, write_size):
    state = replay.init({"t": jnp.zeros((), jnp.int32)}, num_envs, cap)
    add = jax.jit(replay.add)
    for w in range(num_writes):
        t = jnp.arange(w * write_size, (w + 1) * write_size, dtype=jnp.int32)
        state = add(state, {"t": jnp.broadcast_to(t, (num_envs, write_size))})
    return state


def test_add_writes_in_order_and_wraps():
    state = _fill(2, 8, 3, 4)  # 12 steps into 8 slots: slots 0..3 hold t=8..11
    np.testing.assert_array_equal(state.data["t"][0], [8, 9, 10, 11, 4, 5, 6, 7])
    assert int(state.num_written) == 12


@given(
    num_writes=st.integers(1, 12),
    window=st.integers(2, 7),
    prioritized=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_sampled_windows_are_consecutive(num_writes, window, prioritized, seed):
    state = _fill(3, 12, num_writes, 4)
    if int(replay.num_valid_starts(state, window)) == 0:
        return
    sample = jax.jit(replay.sample, static_argnames=("batch_size", "window", "prioritized"))(
        state, jax.random.key(seed), batch_size=64, window=window, prioritized=prioritized
    )
    t = np.asarray(sample.data["t"])
    # Consecutive logical times: the window never spans the write head or old data.
    np.testing.assert_array_equal(np.diff(t, axis=1), np.ones((64, window - 1)))
    assert t.min() >= max(0, num_writes * 4 - 12)
    assert t.max() <= num_writes * 4 - 1


def test_valid_start_mask_matches_count():
    for writes in range(1, 8):
        state = _fill(1, 12, writes, 4)
        mask = replay.valid_start_mask(state, 5)
        assert int(mask.sum()) == int(replay.num_valid_starts(state, 5))


def test_prioritized_sampling_follows_priorities_and_weights():
    state = _fill(1, 16, 4, 4)  # 16 steps, windows of 2: starts 0..14 valid
    prio = jnp.zeros((1, 16)).at[0, 3].set(3.0).at[0, 7].set(1.0)
    state = state.replace(priority=prio)
    sample = replay.sample(state, jax.random.key(0), 4000, 2, prioritized=True)
    starts = np.asarray(sample.data["t"][:, 0])
    frac3 = np.mean(starts == 3)
    assert set(np.unique(starts)) == {3, 7}
    np.testing.assert_allclose(frac3, 0.75, atol=0.02)
    # w = (M p)^-beta normalised: the rarer window has the larger weight, ratio 3.
    w3 = float(sample.weight[starts == 3][0])
    w7 = float(sample.weight[starts == 7][0])
    np.testing.assert_allclose(w7 / w3, 3.0, rtol=1e-4)


def test_update_priorities():
    state = _fill(2, 8, 2, 4)
    state = replay.update_priorities(state, jnp.array([1]), jnp.array([5]), jnp.array([7.0]))
    assert float(state.priority[1, 5]) == 7.0
    assert float(state.max_priority) == 7.0
