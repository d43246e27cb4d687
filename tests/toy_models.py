"""A random linear model for search tests (tests/test_search.py, tests/test_search_variants.py):
enough structure for trees to differ by key and action, and cheap to compile."""

import jax
import jax.numpy as jnp
import mctx


def linear_model(key, *, batch: int, num_actions: int, dim: int, embedding_key=None):
    """`(params, recurrent_fn, root)`: embedding -> tanh(embedding @ W[action]), reward the
    first latent unit, discount 0.95, linear prior logits and value. The root embeddings are
    drawn from `embedding_key`, or from a fourth split of `key` if it is None."""
    if embedding_key is None:
        k1, k2, k3, embedding_key = jax.random.split(key, 4)
    else:
        k1, k2, k3 = jax.random.split(key, 3)
    params = {
        "w": jax.random.normal(k1, (num_actions, dim, dim)) / jnp.sqrt(dim),
        "p": jax.random.normal(k2, (dim, num_actions)),
        "v": jax.random.normal(k3, (dim,)),
    }

    def recurrent_fn(params, rng_key, action, embedding):
        del rng_key
        nxt = jnp.tanh(jnp.einsum("bd,bde->be", embedding, params["w"][action]))
        out = mctx.RecurrentFnOutput(
            reward=nxt[:, 0],
            discount=jnp.full(action.shape, 0.95),
            prior_logits=nxt @ params["p"],
            value=nxt @ params["v"],
        )
        return out, nxt

    emb = jax.random.normal(embedding_key, (batch, dim))
    root = mctx.RootFnOutput(prior_logits=emb @ params["p"], value=emb @ params["v"], embedding=emb)
    return params, recurrent_fn, root
