import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from jaxmb.distributions import Support, h_inverse, h_transform

finite = st.floats(-1e4, 1e4, allow_nan=False, width=32)


def test_h_transform_hand_values():
    # h(3) = sqrt(4) - 1 + 3e-3 = 1.003; h(-8) = -(3 - 1) - 8e-3 = -2.008; h(0) = 0.
    np.testing.assert_allclose(
        h_transform(jnp.array([3.0, -8.0, 0.0])), [1.003, -2.008, 0.0], rtol=1e-6
    )


@given(finite)
def test_h_inverse_inverts(x):
    y = h_inverse(h_transform(jnp.float32(x)))
    np.testing.assert_allclose(y, x, rtol=1e-3, atol=1e-3)


@given(st.floats(-250, 250, allow_nan=False, width=32))
def test_two_hot_round_trip(x):
    support = Support(601, -300.0, 300.0)
    probs = support.scalar_to_probs(jnp.float32(x))
    np.testing.assert_allclose(jnp.sum(probs), 1.0, rtol=1e-5)
    assert int(jnp.sum(probs > 0)) <= 2
    np.testing.assert_allclose(support.probs_to_scalar(probs), x, rtol=2e-3, atol=2e-3)


def test_two_hot_hand_example_without_transform():
    support = Support(5, -2.0, 2.0, use_transform=False)
    np.testing.assert_allclose(support.scalar_to_probs(jnp.float32(0.25)), [0, 0, 0.75, 0.25, 0])
    # Out of range is clipped to the last atom.
    np.testing.assert_allclose(support.scalar_to_probs(jnp.float32(9.0)), [0, 0, 0, 0, 1])


def test_two_hot_under_jit_and_vmap():
    support = Support(21, -10.0, 10.0)
    xs = jnp.linspace(-50, 50, 7)
    batched = jax.jit(jax.vmap(support.scalar_to_probs))(xs)
    assert batched.shape == (7, 21)
    np.testing.assert_allclose(batched, support.scalar_to_probs(xs), rtol=1e-6)
