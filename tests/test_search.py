"""The search layer against mctx itself, masking inside the tree, absorbing terminals."""

import functools

import jax
import jax.numpy as jnp
import mctx
import numpy as np
import pytest
from toy_models import linear_model

from jaxmb import search
from jaxmb.config import SearchConfig
from jaxmb.distributions import Support
from jaxmb.networks import MuZeroNetwork

B, A, D = 4, 5, 6


def _toy_model(key):
    return linear_model(key, batch=B, num_actions=A, dim=D, embedding_key=jax.random.key(7))


@pytest.mark.parametrize("greedy", [False, True])
def test_muzero_matches_mctx(greedy):
    params, rec, root = _toy_model(jax.random.key(0))
    cfg = SearchConfig(algorithm="muzero", num_simulations=24)
    key = jax.random.key(3)
    ours = jax.jit(
        functools.partial(search.run_search, config=cfg, num_simulations=24, greedy=greedy),
        static_argnums=3,
    )(params, key, root, rec)
    ref = mctx.muzero_policy(
        params,
        key,
        root,
        rec,
        24,
        dirichlet_fraction=0.0 if greedy else 0.25,
        temperature=0.0 if greedy else 1.0,
    )
    np.testing.assert_allclose(ours.action_weights, ref.action_weights, rtol=1e-6)
    np.testing.assert_array_equal(ours.action, ref.action)


def test_gumbel_matches_mctx():
    params, rec, root = _toy_model(jax.random.key(1))
    cfg = SearchConfig(algorithm="gumbel", num_simulations=16)
    key = jax.random.key(4)
    ours = search.run_search(params, key, root, rec, cfg, num_simulations=16)
    ref = mctx.gumbel_muzero_policy(params, key, root, rec, 16)
    np.testing.assert_allclose(ours.action_weights, ref.action_weights, rtol=1e-6)
    np.testing.assert_array_equal(ours.action, ref.action)


def _masked_tree_visits(algorithm, seed):
    params, rec, root = _toy_model(jax.random.key(seed))
    in_tree_invalid = jnp.zeros((B, A), bool).at[:, 0].set(True)

    def masked_rec(params, key, action, emb):
        out, nxt = rec(params, key, action, emb)
        return out.replace(prior_logits=search.mask_logits(out.prior_logits, in_tree_invalid)), nxt

    root_invalid = jnp.zeros((B, A), bool).at[:, 1].set(True)
    cfg = SearchConfig(algorithm=algorithm, num_simulations=64, max_num_considered_actions=A)
    out = search.run_search(
        params,
        jax.random.key(seed + 10),
        root,
        masked_rec,
        cfg,
        num_simulations=64,
        invalid_actions=root_invalid,
    )
    return out


@pytest.mark.parametrize("algorithm", ["muzero", "gumbel"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masked_actions_never_selected(algorithm, seed):
    out = _masked_tree_visits(algorithm, seed)
    tree = out.search_tree
    visits = np.asarray(tree.children_visits)  # [B, nodes, A]
    # Root: action 1 is illegal.
    assert (visits[:, 0, 1] == 0).all()
    assert (np.asarray(out.action) != 1).all()
    assert float(out.action_weights[:, 1].max()) == 0.0
    # Below the root: action 0 is illegal at every expanded node.
    expanded = np.asarray(tree.node_visits)[:, 1:] > 0
    assert expanded.any()
    assert (visits[:, 1:, 0][expanded] == 0).all()


def test_recurrent_fn_terminal_is_absorbing():
    net = MuZeroNetwork(
        num_actions=3,
        obs_ndim=1,
        hidden_sizes=(8,),
        latent_dim=8,
        dynamics_hidden_sizes=(8,),
        head_hidden_sizes=(8,),
        value_atoms=11,
        reward_atoms=11,
    )
    support = Support(11, -5.0, 5.0)
    params = net.init(jax.random.key(0), jnp.zeros((1, 4)), jnp.zeros((1,), jnp.int32))
    rec = search.make_recurrent_fn(net, support, support, discount=0.9)
    emb = net.apply(params, jnp.ones((2, 4)), method=MuZeroNetwork.represent)

    def with_terminal_bias(bias):
        p = jax.tree_util.tree_map(lambda x: x, params)
        dense = p["params"]["terminal"]["Dense_0"]
        dense["kernel"] = jnp.zeros_like(dense["kernel"])
        dense["bias"] = jnp.full_like(dense["bias"], bias)
        return rec(p, None, jnp.array([0, 1]), emb)[0]

    np.testing.assert_allclose(with_terminal_bias(20.0).discount, [0.0, 0.0])
    np.testing.assert_allclose(with_terminal_bias(-20.0).discount, [0.9, 0.9])
