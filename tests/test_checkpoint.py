"""`jaxmb.checkpoint.Checkpointer`: a restored tree is the saved one, keys and empty arrays
included."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxmb.checkpoint import Checkpointer


def test_round_trip_keeps_keys_dtypes_and_zero_size_arrays(tmp_path):
    # MJX's `data.act` is [0] for Acrobot (no actuator activations); orbax refuses to save
    # zero-size arrays, which made a Playground run fail at its first checkpoint.
    state = {
        "key": jax.random.split(jax.random.key(3), 2),
        "weights": jnp.arange(6, dtype=jnp.float32).reshape(2, 3),
        "count": jnp.int32(7),
        "act": jnp.zeros((4, 0), jnp.float32),
        "flags": jnp.zeros((0,), jnp.bool_),
    }
    checkpointer = Checkpointer(str(tmp_path / "checkpoints"))
    checkpointer.save(5, state)
    restored = checkpointer.restore(jax.eval_shape(lambda: state))
    checkpointer.close()
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    np.testing.assert_array_equal(
        jax.random.key_data(restored["key"]), jax.random.key_data(state["key"])
    )
    for name in ("weights", "count", "act", "flags"):
        assert restored[name].shape == state[name].shape, name
        assert restored[name].dtype == state[name].dtype, name
        np.testing.assert_array_equal(restored[name], state[name], err_msg=name)
