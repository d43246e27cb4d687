"""The compiled loop: shapes under jit and vmap, metrics, determinism."""

import collections
import importlib.util

import jax
import nan_injection
import numpy as np
import pytest
from tiny_config import tiny

import jaxmb.train as train_lib
from jaxmb.loop import Loop, NonFiniteLossError, check_finite, make_train


@pytest.fixture(scope="module")
def vmapped_run():
    cfg = tiny()
    train = make_train(cfg)
    keys = jax.random.split(jax.random.key(0), 2)
    return cfg, jax.jit(jax.vmap(train))(keys)


def test_metrics_shapes_and_schedule(vmapped_run):
    cfg, (state, metrics) = vmapped_run
    iters = cfg.num_iterations
    assert iters == 10
    for key in ("env_steps", "train/episode_return", "eval/episode_return", "loss", "learning"):
        assert metrics[key].shape == (2, iters), key
    np.testing.assert_array_equal(metrics["env_steps"][0], 16 * np.arange(1, iters + 1))
    # Learning starts once 32 transitions are stored (iteration 2), with finite losses.
    learning = np.asarray(metrics["learning"][0])
    np.testing.assert_array_equal(learning, [0] + [1] * (iters - 1))
    assert np.isnan(metrics["loss"][0, 0])
    assert np.isfinite(metrics["loss"][:, 1:]).all()
    # Evaluation every 80 env steps = every 5 iterations (and the last one).
    evaluated = np.isfinite(np.asarray(metrics["eval/episode_return"][0]))
    np.testing.assert_array_equal(np.flatnonzero(evaluated), [4, 9])
    # 2 updates per iteration after the first.
    assert int(state.agent.num_updates[0]) == 2 * (iters - 1)


def test_seeds_differ_and_vmap_matches_single(vmapped_run):
    cfg, (_, metrics) = vmapped_run
    assert not np.allclose(metrics["loss"][0, 1:], metrics["loss"][1, 1:])
    keys = jax.random.split(jax.random.key(0), 2)
    _, single = jax.jit(make_train(cfg))(keys[1])
    np.testing.assert_allclose(single["loss"][1:], metrics["loss"][1, 1:], rtol=2e-4, atol=1e-5)


def test_num_seeds_batched_program_and_callback():
    cfg = tiny("train.log_every=48")
    reports = []
    train = make_train(cfg, callback=reports.append, num_seeds=3)
    _, metrics = jax.jit(train)(jax.random.split(jax.random.key(1), 3))
    jax.effects_barrier()
    assert metrics["loss"].shape == (3, cfg.num_iterations)
    # Reports at iteration 1, every 3 iterations (48 env steps) and at the last.
    assert [int(r["iteration"]) for r in reports] == [1, 3, 6, 9, 10]
    assert reports[-1]["loss"].shape == (3,)


def test_one_seed_batched_program_is_the_plain_program():
    """`num_seeds=1` (the CLI's default) runs the single-seed program with a leading [1]
    axis, not a vmap of one: the same numbers as the plain program, bit for bit."""
    cfg = tiny()
    key = jax.random.key(3)
    reports = []
    one_state, one = jax.jit(make_train(cfg, callback=reports.append, num_seeds=1))(key[None])
    jax.effects_barrier()
    plain_state, plain = jax.jit(make_train(cfg))(key)
    assert one["loss"].shape == (1, cfg.num_iterations) and reports[-1]["loss"].shape == (1,)
    assert one_state.iteration.shape == () and one_state.replay.num_written.shape == ()
    for name, values in plain.items():
        np.testing.assert_array_equal(one[name][0], values, err_msg=name)
    for a, b in zip(
        jax.tree.leaves(one_state.agent.params),
        jax.tree.leaves(plain_state.agent.params),
        strict=True,
    ):
        np.testing.assert_array_equal(a[0], b)


@pytest.mark.parametrize(
    "overrides",
    [
        ["agent.search.algorithm=muzero", "replay.prioritized=true", "agent.loss.bootstrap=stored"],
        [  # One-Step (no search anywhere), without the terminal term
            "agent.search.for_targets=false",
            "agent.search.for_acting_train=false",
            "agent.search.for_acting_test=false",
            "agent.loss.weights={policy: 1.0, value: 0.25, reward: 1.0, terminal: 0.0}",
        ],
    ],
)
def test_variants_run(overrides):
    cfg = tiny(*overrides, "train.total_env_steps=64")
    _, metrics = jax.jit(make_train(cfg))(jax.random.key(0))
    assert np.isfinite(metrics["loss"][1:]).all()


def test_seed_batched_program_keeps_its_branches(monkeypatch):
    """Learning and evaluation stay real `lax.cond`s when seeds are batched: a select would
    run the evaluation episodes at every iteration. Building any of the three programs traces
    `iteration` and `learn` once each (their shapes are needed before the real call)."""
    traces = collections.Counter()

    def counted(name):
        method = getattr(Loop, name)

        def wrapper(self, *args):
            traces[name] += 1
            return method(self, *args)

        monkeypatch.setattr(Loop, name, wrapper)

    counted("iteration")
    counted("learn")
    cfg = tiny()
    keys = jax.random.split(jax.random.key(0), 2)
    cases = []
    for build, args in [
        (lambda: jax.jit(make_train(cfg)), keys[0]),
        (lambda: jax.jit(make_train(cfg, num_seeds=2)), keys),
        (lambda: jax.jit(jax.vmap(make_train(cfg))), keys),
    ]:
        traces.clear()
        cases.append(build().lower(args).as_text().count("stablehlo.case"))
        assert traces == {"iteration": 1, "learn": 1}
    single, batched, user_vmap = cases
    assert single >= 2
    assert batched == single
    assert user_vmap == single


@pytest.mark.parametrize(
    "num_seeds",
    [
        # `make test-all` only: a one-seed CLI run is the plain program, and
        # test_resume.py's non-finite-loss test runs its guard end to end.
        pytest.param(None, marks=pytest.mark.heavy),
        2,
    ],
)
def test_nan_guard_keeps_last_finite_update_and_names_it(num_seeds):
    cfg = tiny()
    key = jax.random.key(0) if num_seeds is None else jax.random.split(jax.random.key(0), 2)
    with nan_injection.poisoned_update(5):  # the rewards of SGD update 5 are NaN
        # Built under the patch: make_train's memory check traces the iteration already.
        train = make_train(cfg, num_seeds=num_seeds)
        state, metrics = jax.jit(train)(key)
    assert np.asarray(state.halted).all()
    np.testing.assert_array_equal(state.nan_update, 5)
    # The fifth update was not applied: four were.
    np.testing.assert_array_equal(state.agent.num_updates, 4)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state.agent.params))
    with pytest.raises(NonFiniteLossError, match=r"SGD update 5, non-finite value, reward"):
        check_finite(train.loop, state)
    if num_seeds is not None:
        # The seed-batched program stops iterating once every seed has halted.
        assert int(state.iteration) == 4
        assert np.isnan(metrics["loss"][:, 4:]).all()


def test_continuous_actions_reach_muzero_through_env_discretize():
    """gymnax Pendulum (Box actions in [-2, 2]) trains once `env.discretize` gives it a grid;
    without one, the config error names the key to set."""
    from jaxmb.config import ConfigError

    cfg = tiny(
        "env.id=gymnax:Pendulum-v1", "env.discretize.mode=grid", "env.discretize.values_per_dim=5"
    )
    train = make_train(cfg)
    assert train.loop.agent.num_actions == 5
    np.testing.assert_allclose(np.ravel(train.loop.env.codebook), [-2, -1, 0, 1, 2])
    _, metrics = jax.eval_shape(train, jax.random.key(0))
    assert metrics["loss"].shape == (cfg.num_iterations,)
    with pytest.raises(ConfigError, match="env.discretize.mode"):
        make_train(tiny("env.id=gymnax:Pendulum-v1"))


def test_env_action_repeat_wraps_the_env_and_refuses_where_it_does_not_apply():
    """`env.action_repeat` holds each action for k env steps (train and evaluation alike);
    host envs and two-player games get a config error naming the key."""
    from jaxmb.config import ConfigError
    from jaxmb.envs import ActionRepeat
    from jaxmb.plotting import steps_label

    env, _ = train_lib.build_env(tiny("env.id=gymnax:Acrobot-v1", "env.action_repeat=4"))
    assert isinstance(env, ActionRepeat) and env.repeat == 4
    assert not isinstance(train_lib.build_env(tiny("env.id=gymnax:Acrobot-v1"))[0], ActionRepeat)
    # The loop's env steps are then decisions, and the plots' x axes say so.
    assert steps_label(tiny("env.action_repeat=4")) == "agent decisions (4 env steps each)"
    assert steps_label(tiny()) == "environment steps"
    for env_id in ("gym:CartPole-v1", "pgx:go_9x9"):
        if env_id.startswith("pgx") and importlib.util.find_spec("pgx") is None:
            continue
        with pytest.raises(ConfigError, match="env.action_repeat"):
            train_lib.build_env(tiny(f"env.id={env_id}", "env.action_repeat=2"))
