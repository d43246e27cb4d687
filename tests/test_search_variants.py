"""Search variants against mctx itself, hand-computed returns, and the env as its own model."""

import functools
import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import mctx
import numpy as np
import pytest
from toy_models import linear_model

from jaxmb import search_variants as sv
from jaxmb.envs.wrappers import AutoReset
from jaxmb.search import MASKED_LOGIT

B, A, D = 2, 3, 4


def _load_random_walk_env():
    # tests/envs is not a package and its conftest only runs for tests there.
    path = pathlib.Path(__file__).parent / "envs" / "random_walk_env.py"
    spec = importlib.util.spec_from_file_location("random_walk_env", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _linear_model(seed=0):
    return linear_model(jax.random.key(seed), batch=B, num_actions=A, dim=D)


SIMS, MAX_DEPTH = 20, 2


@pytest.fixture(scope="module", params=["muzero", "gumbel"])
def searches(request):
    """mctx's policy and `run_policy` with a never-reached uct_depth, on one rollout model.

    Rollouts make the model use its key, so equal trees also mean equal keys reached it.
    """
    algorithm = request.param
    params, rec, root = _linear_model(seed=2)
    model = sv.with_rollouts(rec, horizon=2, mix=0.5)
    invalid = jnp.zeros((B, A), bool).at[1, 0].set(True)
    if algorithm == "muzero":
        reference = mctx.muzero_policy
    else:
        reference = functools.partial(mctx.gumbel_muzero_policy, max_num_considered_actions=A)

    def both(key):
        ref = reference(
            params, key, root, model, SIMS, invalid_actions=invalid, max_depth=MAX_DEPTH
        )
        ours = sv.run_policy(
            params,
            key,
            root,
            model,
            algorithm=algorithm,
            num_simulations=SIMS,
            uct_depth=SIMS + 1,
            invalid_actions=invalid,
            max_depth=MAX_DEPTH,
            max_num_considered_actions=A,
        )
        return ref, ours

    ref, ours = jax.jit(both)(jax.random.key(3))
    return {"ref": ref, "ours": ours, "params": params}


def test_run_policy_with_unreached_uct_depth_equals_mctx(searches):
    ours, ref = searches["ours"], searches["ref"]
    np.testing.assert_array_equal(ours.action, ref.action)
    np.testing.assert_allclose(ours.action_weights, ref.action_weights, rtol=1e-6)
    # The two searches are separate copies in one program, which XLA may round differently:
    # values are of order 1, so they agree to 1e-6 relative or one float32 step at 1 (1e-7).
    for got, want in zip(
        jax.tree.leaves(ours.search_tree), jax.tree.leaves(ref.search_tree), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def _reference_depths(parents):
    depths = np.full(parents.shape, -1)
    for b, row in enumerate(parents):
        for node in range(len(row)):
            depth, index = 0, node
            while row[index] != -1:
                index, depth = row[index], depth + 1
            if node == 0 or depth > 0:
                depths[b, node] = depth
    return depths


def test_node_depths_match_walking_up_parents(searches):
    tree = searches["ref"].search_tree
    depths = jax.jit(sv.node_depths)(tree)
    assert depths.dtype == jnp.int32 and depths.shape == (B, SIMS + 1)
    np.testing.assert_array_equal(depths, _reference_depths(np.asarray(tree.parents)))


def test_max_depth_bounds_node_depths(searches):
    tree = searches["ref"].search_tree
    depths = np.asarray(sv.node_depths(tree))
    assert depths.max() == MAX_DEPTH
    # Simulations that hit the cap re-evaluate a leaf instead of creating a node, so some
    # slots stay empty, and exactly the created nodes have visits.
    assert ((depths >= 0).sum(-1) < SIMS + 1).all()
    np.testing.assert_array_equal(depths >= 0, np.asarray(tree.node_visits) > 0)


def test_search_with_rollouts_under_jit(searches):
    tree, params = searches["ref"].search_tree, searches["params"]
    created = np.asarray(sv.node_depths(tree)) >= 1
    assert np.isfinite(np.asarray(tree.node_values)).all()
    # Each new node's value mixes the value head at its embedding with a rollout return.
    head = np.asarray(tree.embeddings @ params["v"])
    assert not np.allclose(np.asarray(tree.raw_values)[created], head[created])


def _unbatched_tree(prior_logits_at_node_1):
    nodes = 3
    zeros, ints = np.zeros((nodes, A), np.float32), np.zeros((nodes, A), np.int32)
    return mctx.Tree(
        node_visits=np.ones(nodes, np.int32),
        raw_values=np.zeros(nodes, np.float32),
        node_values=np.zeros(nodes, np.float32),
        parents=np.array([-1, 0, 1], np.int32),
        action_from_parent=np.array([-1, 0, 0], np.int32),
        children_index=ints - 1,
        children_prior_logits=zeros + (np.arange(nodes) == 1)[:, None] * prior_logits_at_node_1,
        children_visits=ints,
        children_rewards=zeros,
        children_discounts=zeros,
        children_values=zeros,
        embeddings=np.zeros((nodes, 1), np.float32),
        root_invalid_actions=np.zeros(A, bool),
        extra_data=None,
    )


def test_depth_limited_selection_samples_prior_from_uct_depth_on():
    logits = np.log([0.7, 0.3, 1.0]).astype(np.float32)
    logits[2] = MASKED_LOGIT
    tree = _unbatched_tree(logits)

    def always_two(rng_key, tree, node_index, depth):
        del rng_key, tree, node_index, depth
        return jnp.int32(2)

    select = sv.depth_limited_interior_selection(always_two, uct_depth=2)
    keys = jax.random.split(jax.random.key(5), 2000)
    select_many = jax.jit(jax.vmap(select, in_axes=(0, None, None, None)))
    for depth, expected in [(1.0, [0.0, 0.0, 1.0]), (2.0, [0.7, 0.3, 0.0]), (5.0, [0.7, 0.3, 0.0])]:
        actions = select_many(keys, tree, 1, np.float32(depth))
        assert actions.dtype == jnp.int32
        freq = np.bincount(np.asarray(actions), minlength=A) / len(keys)
        np.testing.assert_allclose(freq, expected, atol=0.04)
    with pytest.raises(ValueError):
        sv.depth_limited_interior_selection(always_two, uct_depth=0)


def _optimistic_qtransform(tree, node_index):
    # Unvisited actions score 1, so PUCT tries every action, even those with prior 0: a control
    # showing that only the uct_depth rule keeps the search on the prior.
    return jnp.where(tree.children_visits[node_index] > 0, 0.0, 1.0)


def _one_hot_prior_model(params, rng_key, action, embedding):
    del params, rng_key
    logits = jnp.full((action.shape[0], A), MASKED_LOGIT).at[:, 2].set(0.0)
    zeros = jnp.zeros(action.shape)
    out = mctx.RecurrentFnOutput(
        reward=zeros, discount=zeros + 1.0, prior_logits=logits, value=zeros
    )
    return out, embedding


def test_nodes_from_uct_depth_on_follow_the_prior():
    # uct_depth 2: depth-1 nodes still search (the control: PUCT with optimistic values tries
    # actions the prior rules out), depth-2 nodes and below only take the prior's action.
    root = mctx.RootFnOutput(
        prior_logits=jnp.zeros((B, A)), value=jnp.zeros(B), embedding=jnp.zeros((B, 1))
    )
    policy = functools.partial(
        sv.run_policy,
        algorithm="muzero",
        num_simulations=30,
        uct_depth=2,
        qtransform=_optimistic_qtransform,
    )
    out = jax.jit(policy, static_argnums=3)(None, jax.random.key(0), root, _one_hot_prior_model)
    depths = np.asarray(sv.node_depths(out.search_tree))
    visits = np.asarray(out.search_tree.children_visits)  # [B, N, A]
    off_prior = visits[..., :2].sum(-1)  # [B, N] visits to actions the prior rules out
    assert (visits[:, 0] > 0).all()  # the root searches every action
    assert off_prior[depths == 1].sum() > 0
    following = depths >= 2
    assert visits[following].sum() > 0  # simulations did pass through such nodes
    assert (off_prior[following] == 0).all()


def _counter_model(params, rng_key, action, counter):
    """Embedding: a counter c. Step: c' = c + 1, reward c' + a / 10, value 10 c', prior one-hot
    on action c' % A, discount `gamma` except 0 when c' reaches `terminal_at` (per row)."""
    del rng_key
    nxt = counter + 1
    logits = jnp.where(jnp.arange(A) == (nxt % A)[:, None], 0.0, MASKED_LOGIT)
    out = mctx.RecurrentFnOutput(
        reward=nxt + action / 10.0,
        discount=jnp.where(nxt == params["terminal_at"], 0.0, params["gamma"]),
        prior_logits=logits + params["flatten_prior"] * -logits,
        value=10.0 * nxt,
    )
    return out, nxt


def _counter_params(gamma, terminal_at, flatten_prior=0.0):
    return {
        "gamma": jnp.asarray(gamma),
        "terminal_at": jnp.asarray(terminal_at),
        "flatten_prior": jnp.asarray(flatten_prior),
    }


@pytest.mark.parametrize("greedy", [False, True])
def test_rollout_value_is_the_discounted_return(greedy):
    # Rows: discount 0.9; a terminal at counter 3; a two-player signed discount -0.9.
    params = _counter_params([0.9, 0.9, -0.9], [-1, 3, -1])
    # From counter 0 and action 1 with H = 3, the rollout takes actions 1, 2, 0 from counters
    # 1, 2, 3: rewards 2.1, 3.2, 4.0, then the value 40 at counter 4.
    hand_returns = np.array(
        [
            2.1 + 0.9 * 3.2 + 0.81 * 4.0 + 0.729 * 40.0,
            2.1 + 0.9 * 3.2,  # discount 0 on reaching counter 3: r_3 and v_H do not count
            2.1 - 0.9 * 3.2 + 0.81 * 4.0 - 0.729 * 40.0,
        ]
    )
    counter, action = jnp.zeros(3, jnp.int32), jnp.ones(3, jnp.int32)

    def evaluate(key):
        outputs = {
            mix: sv.with_rollouts(_counter_model, horizon=3, mix=mix, greedy=greedy)(
                params, key, action, counter
            )
            for mix in (1.0, 0.5)
        }
        return outputs, _counter_model(params, key, action, counter)

    outputs, (first, first_counter) = jax.jit(evaluate)(jax.random.key(0))
    np.testing.assert_allclose(first.value, 10.0)
    for mix, (out, emb) in outputs.items():
        expected = (1 - mix) * 10.0 + mix * hand_returns
        np.testing.assert_allclose(out.value, expected, rtol=1e-5)
        for name in ("reward", "discount", "prior_logits"):
            np.testing.assert_array_equal(getattr(out, name), getattr(first, name))
        np.testing.assert_array_equal(emb, first_counter)


def test_rollouts_sample_the_prior_unless_greedy():
    params = _counter_params(0.9, -1, flatten_prior=1.0)  # a uniform prior everywhere
    counter, action = jnp.zeros(64, jnp.int32), jnp.zeros(64, jnp.int32)

    def evaluate(key):
        return [
            sv.with_rollouts(_counter_model, horizon=3, mix=1.0, greedy=greedy)(
                params, key, action, counter
            )[0].value
            for greedy in (False, True)
        ]

    sampled, greedy = jax.jit(evaluate)(jax.random.key(0))
    assert len(np.unique(np.asarray(sampled))) > 1
    # Argmax of a flat prior is action 0: rewards 2, 3, 4, then the value 40 at counter 4.
    np.testing.assert_allclose(greedy, 2.0 + 0.9 * 3.0 + 0.81 * 4.0 + 0.729 * 40.0, rtol=1e-6)


def test_with_rollouts_passes_through_and_checks_arguments():
    inner = _counter_model
    assert sv.with_rollouts(inner, horizon=0, mix=1.0) is inner
    assert sv.with_rollouts(inner, horizon=3, mix=0.0) is inner
    with pytest.raises(ValueError):
        sv.with_rollouts(inner, horizon=3, mix=1.5)
    with pytest.raises(ValueError):
        sv.with_rollouts(inner, horizon=-1, mix=0.5)


def test_run_policy_rejects_unknown_algorithm():
    _, rec, root = _linear_model()
    with pytest.raises(ValueError, match="algorithm"):
        sv.run_policy(None, jax.random.key(0), root, rec, algorithm="puct", num_simulations=4)


GAMMA = 0.9


def _walk_predict(params, obs):
    del params
    logits = obs @ jnp.array([[1.0, 0.0, -1.0], [0.0, 0.5, 0.2]])
    return logits, 0.5 * obs[:, 0] + 0.1 * obs[:, 1]


def _walk_setup():
    walk = _load_random_walk_env()
    env = AutoReset(walk.RandomWalkEnv())
    env_params = env.default_params()  # goal 3, time limit 6
    # Row 0 reaches the goal with action 2; row 1 hits the time limit; row 2 sits where
    # action 0 is illegal.
    state = walk.WalkState(position=jnp.array([2, 0, -2]), time=jnp.array([0, 5, 0]))
    obs = jnp.stack([state.position, state.time], -1).astype(jnp.float32)
    return env, env_params, state, obs


def test_env_recurrent_fn_matches_env_step():
    env, env_params, state, _ = _walk_setup()
    rec = sv.env_recurrent_fn(env, env_params, _walk_predict, discount=GAMMA)

    def every_action(key):
        results = []
        for a in range(A):
            action = jnp.full(3, a)
            keys = jax.random.split(key, 3)  # what the recurrent fn gives the 3 rows
            env_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, state, action, env_params)
            results.append((rec(None, key, action, state), env_step))
        return results

    for a, ((out, next_state), env_step) in enumerate(jax.jit(every_action)(jax.random.key(0))):
        _, env_state, reward, terminated, truncated, info = jax.tree.map(np.asarray, env_step)
        jax.tree.map(np.testing.assert_array_equal, next_state, env_state)
        np.testing.assert_allclose(np.asarray(out.reward)[[0, 2]], reward[[0, 2]])
        # Time limit: the reward bootstraps from the final observation's value.
        assert truncated[1] and not terminated[1]
        final_value = 0.5 * info["final_observation"][1, 0] + 0.1 * info["final_observation"][1, 1]
        np.testing.assert_allclose(out.reward[1], a + GAMMA * final_value, rtol=1e-6)
        assert terminated[0] == (a == 2)  # position 2 + 1 reaches the goal
        expected_discount = [0.0 if a == 2 else GAMMA, 0.0, GAMMA]
        np.testing.assert_allclose(out.discount, expected_discount, rtol=1e-6)
        # Position -2 forbids action 0 inside the tree too.
        assert (out.prior_logits[2, 0] == MASKED_LOGIT) == (a < 2)


def test_search_on_the_env_model():
    env, env_params, state, obs = _walk_setup()
    rec = sv.env_recurrent_fn(env, env_params, _walk_predict, discount=GAMMA)
    root, invalid = sv.env_root(
        None, obs, state, env=env, env_params=env_params, predict_fn=_walk_predict
    )
    np.testing.assert_array_equal(invalid, [[False] * 3, [False] * 3, [True, False, False]])
    policy = functools.partial(
        mctx.gumbel_muzero_policy, num_simulations=6, max_num_considered_actions=A
    )
    tree = jax.jit(policy, static_argnums=3)(
        None, jax.random.key(0), root, rec, invalid_actions=invalid
    ).search_tree
    visited = np.asarray(tree.children_visits[:, 0] > 0)
    np.testing.assert_array_equal(visited, ~np.asarray(invalid))
    rewards, discounts = np.asarray(tree.children_rewards[:, 0]), tree.children_discounts[:, 0]
    np.testing.assert_allclose(rewards[0], [0.0, 1.0, 2.0])  # the walk's reward is the action
    np.testing.assert_allclose(rewards[2, 1:], [1.0, 2.0])
    final_values = 0.5 * np.array([-1.0, 0.0, 1.0]) + 0.1 * 6
    np.testing.assert_allclose(rewards[1], [0.0, 1.0, 2.0] + GAMMA * final_values, rtol=1e-6)
    np.testing.assert_allclose(discounts[0], [GAMMA, GAMMA, 0.0])  # action 2 reaches the goal
    np.testing.assert_allclose(discounts[1], [0.0, 0.0, 0.0])  # time limit
    np.testing.assert_allclose(discounts[2, 1:], [GAMMA, GAMMA])


def test_capped_leaves_are_re_evaluated_on_revisits(searches):
    tree = jax.tree.map(np.asarray, searches["ref"].search_tree)
    depths = np.asarray(sv.node_depths(tree))
    leaves = depths == MAX_DEPTH
    assert (tree.children_visits[leaves] == 0).all()
    # A node with no children gains visits only when mctx evaluates it again, so a count k > 1
    # means k calls of the recurrent fn for that one node.
    assert (tree.node_visits[leaves] > 1).any()
    # The node keeps only its last evaluation...
    np.testing.assert_array_equal(tree.node_values[leaves], tree.raw_values[leaves])
    # ...while its parent averaged all of them, which the sampled rollouts made differ: the
    # parent's sum of backups no longer equals what its children's stored values imply.
    backed_up = tree.node_values * tree.node_visits
    implied = tree.raw_values + np.sum(
        tree.children_visits
        * (tree.children_rewards + tree.children_discounts * tree.children_values),
        axis=-1,
    )
    np.testing.assert_allclose(backed_up[:, 0], implied[:, 0], rtol=1e-5, atol=1e-5)  # control
    assert np.abs(backed_up - implied)[depths == MAX_DEPTH - 1].max() > 1e-3
