"""No learning target mixes two episodes: replay windows + targets against a Python reference."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from jaxmb import replay
from jaxmb.targets import nstep_value_targets, unroll_masks

GAMMA, TD, UNROLL = 0.9, 3, 3
WINDOW = UNROLL + TD + 1


def reference_target(r, term, trunc, v, fv, k):
    """The n-step return of position k, walking forward one step at a time."""
    z = 0.0
    for i in range(TD):
        j = k + i
        z += GAMMA**i * r[j]
        if term[j]:
            return z
        if trunc[j]:
            return z + GAMMA ** (i + 1) * fv[j]
    return z + GAMMA**TD * v[k + TD]


def _stream(seed, length, p_end):
    rng = np.random.default_rng(seed)
    term = rng.random(length) < p_end
    trunc = (rng.random(length) < p_end) & ~term
    episode = np.concatenate([[0], np.cumsum(term | trunc)[:-1]])  # id of the obs at step t
    return {
        "reward": rng.normal(size=length).astype(np.float32),
        "terminated": term,
        "truncated": trunc,
        "value": rng.normal(size=length).astype(np.float32),
        "final_value": rng.normal(size=length).astype(np.float32),
        "episode": episode.astype(np.int32),
    }


@given(seed=st.integers(0, 10_000), p_end=st.sampled_from([0.05, 0.2, 0.5]))
def test_sampled_targets_match_reference_and_stay_in_episode(seed, p_end):
    data = _stream(seed, 64, p_end)
    example = {k: jnp.asarray(v[0]) for k, v in data.items()}
    state = replay.init(example, 1, 32)
    for start in range(0, 64, 8):  # wraps around the 32-step buffer twice
        chunk = {k: jnp.asarray(v[None, start : start + 8]) for k, v in data.items()}
        state = replay.add(state, chunk)
    sample = replay.sample(state, jax.random.key(seed), 16, WINDOW)
    w = jax.tree.map(np.asarray, sample.data)
    targets = jax.vmap(
        lambda r, te, tr, v, fv: nstep_value_targets(
            r, te, tr, v, fv, discount=GAMMA, td_steps=TD, num_positions=UNROLL + 1
        )
    )(w["reward"], w["terminated"], w["truncated"], w["value"], w["final_value"])
    masks = jax.vmap(lambda te, tr: unroll_masks(te, tr, UNROLL + 1))(
        w["terminated"], w["truncated"]
    )
    for b in range(16):
        same = masks["same_episode"][b] > 0
        # Positions trained as "this episode" really are in the episode of position 0 ...
        assert (w["episode"][b, : UNROLL + 1][same] == w["episode"][b, 0]).all()
        # ... and every other position is either absorbing (after a termination) or unused.
        other = ~same
        absorbing = masks["absorbing"][b] > 0
        assert (masks["value"][b][other & ~absorbing] == 0).all()
        for k in np.flatnonzero(same):
            expected = reference_target(
                w["reward"][b],
                w["terminated"][b],
                w["truncated"][b],
                w["value"][b],
                w["final_value"][b],
                k,
            )
            np.testing.assert_allclose(targets[b, k], expected, rtol=1e-5, atol=1e-5)
