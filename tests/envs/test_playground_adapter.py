"""Playground and brax adapters: the contract under jit and vmap, and three references.

References: the upstream env stepped directly (same keys, same actions), MuJoCo's C engine
stepped from the same start (the engine dm_control wraps), and dm_control's own suite task
when it is installed. Compiling dominates the run time, so each env gets one jitted program
(module-scoped fixture) that runs the adapter and the upstream env side by side; it runs
twice, with the default time limit and with `TIME_LIMIT`, which is a params leaf and so
shares the compiled program. tests/conftest.py's fast compile options cut compile time about
threefold.
"""

import dataclasses

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from xdist_once import computed_once

pytest.importorskip("mujoco_playground")
mujoco = pytest.importorskip("mujoco")

import jaxmb.envs  # noqa: E402
from jaxmb.envs import core  # noqa: E402
from jaxmb.envs.discretize import Discretize  # noqa: E402

NUM_ENVS = 2
NUM_STEPS = 30
TIME_LIMIT = 5
# The adapter and the upstream env run the same operations in one program; they agree
# to float32 rounding (XLA may fuse the two copies differently).
_SAME_PROGRAM_TOL = {"rtol": 1e-5, "atol": 1e-5}


def _rollout_program(env, upstream, num_steps, *, independent_reset=True):
    """`run(key, actions[T, B, ...], params)`: adapter and upstream side by side.

    `env` takes `actions` (integers when it is a `Discretize`); `upstream` takes
    `to_vector(actions)`. With `independent_reset=False` the upstream rollout starts from
    the adapter's reset state instead of its own reset with the same keys, which saves
    compiling a second copy of a costly reset (Cheetah settles for 200 physics steps).
    """
    to_vector = env.to_continuous if isinstance(env, Discretize) else (lambda a: a)

    def run(key, actions, params):
        key_reset, key_steps = jax.random.split(key)
        reset_keys = jax.random.split(key_reset, NUM_ENVS)
        step_keys = jax.random.split(key_steps, (num_steps, NUM_ENVS))
        reset_obs, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, params)

        def adapter_step(state, key_and_action):
            keys, action = key_and_action
            obs, state, reward, terminated, truncated, info = jax.vmap(
                env.step, in_axes=(0, 0, 0, None)
            )(keys, state, action, params)
            record = {
                "obs": obs,
                "reward": reward,
                "terminated": terminated,
                "truncated": truncated,
                "final_observation": info["final_observation"],
            }
            if isinstance(env, Discretize):
                record["mask"] = jax.vmap(env.action_mask, in_axes=(0, None))(state, params)
            return state, record

        _, adapter = jax.lax.scan(adapter_step, state, (step_keys, actions))

        first = jax.vmap(upstream.reset)(reset_keys) if independent_reset else state.env_state

        def upstream_step(upstream_state, action):
            upstream_state = jax.vmap(upstream.step)(upstream_state, to_vector(action))
            return upstream_state, {
                "obs": upstream_state.obs,
                "reward": upstream_state.reward,
                "done": upstream_state.done,
            }

        _, direct = jax.lax.scan(upstream_step, first, actions)
        data = first.data if hasattr(first, "data") else first.pipeline_state
        out = {
            "reset_obs": reset_obs,
            "adapter": adapter,
            "direct": direct,
            "direct_reset_obs": first.obs,
            "qpos": data.qpos,
            "qvel": data.qvel,
        }
        if params.full_reset:
            # What a full reset restarts from: upstream reset with the step's own key.
            out["fresh_obs"] = jax.vmap(jax.vmap(upstream.reset))(step_keys).obs
        return out

    return jax.jit(run)


def _run_both_limits(
    env_id, actions_fn, wrap=None, num_steps=NUM_STEPS, *, once=None, **program_options
):
    """Builds `env_id` (wrapped by `wrap`) and runs its program at both time limits.

    `once(name, compute)` (a module fixture's `computed_once`) shares the two rollouts with
    the other xdist worker, so that the program compiles once per test run.
    """
    raw, params = jaxmb.envs.make(env_id)
    assert raw.default_params() == params
    limited = dataclasses.replace(params, max_steps_in_episode=TIME_LIMIT)
    env = raw if wrap is None else wrap(raw)
    # Actions repeat with the period of the short time limit, so that with a cached reset
    # every short episode replays the first one.
    period = actions_fn(jax.random.key(7), env, TIME_LIMIT)
    actions = jnp.concatenate([period] * -(-num_steps // TIME_LIMIT))[:num_steps]

    def rollouts():
        program = _rollout_program(env, raw.upstream, num_steps, **program_options)
        key = jax.random.key(0)
        return jax.device_get((program(key, actions, params), program(key, actions, limited)))

    default_out, limited_out = rollouts() if once is None else once(env_id, rollouts)
    return env, params, np.asarray(actions), default_out, limited_out


def _uniform_actions(key, env, steps):
    space = env.action_space
    return jax.random.uniform(
        key, (steps, NUM_ENVS, *space.shape), minval=space.low, maxval=space.high
    )


def _integer_actions(key, env, steps):
    return jax.random.randint(key, (steps, NUM_ENVS), 0, env.num_actions, dtype=jnp.int32)


@pytest.fixture(scope="module")
def once(tmp_path_factory, worker_id):
    return lambda name, compute: computed_once(tmp_path_factory, worker_id, name, compute)


@pytest.fixture(scope="module")
def acrobot(once):
    """Acrobot through `Discretize(grid, 5 values)`; full reset (its default)."""
    return _run_both_limits(
        "playground:AcrobotSwingupSparse",
        _integer_actions,
        wrap=lambda env: Discretize(env, "grid", values_per_dim=5),
        once=once,
    )


@pytest.fixture(scope="module")
def cheetah(once):
    """Cheetah with continuous actions; reset to the cached first state (its default).

    Its upstream rollout starts from the adapter's reset state (`independent_reset`), so
    the reset itself is compared on Acrobot and brax only.
    """
    return _run_both_limits(
        "playground:CheetahRun", _uniform_actions, independent_reset=False, once=once
    )


def _assert_contract_shapes(env, out):
    adapter = out["adapter"]
    shape = (NUM_STEPS, NUM_ENVS)
    assert adapter["obs"].shape == (*shape, *env.observation_space.shape)
    assert adapter["obs"].dtype == np.float32 and adapter["reward"].dtype == np.float32
    assert adapter["reward"].shape == shape
    assert adapter["terminated"].dtype == np.bool_ and adapter["truncated"].dtype == np.bool_
    for obs in (*out["reset_obs"], *adapter["obs"].reshape(-1, *env.observation_space.shape)):
        assert env.observation_space.contains(obs)


@pytest.mark.parametrize("name", ["acrobot", "cheetah"])
def test_spaces_params_and_shapes(name, request):
    env, params, actions, default_out, limited_out = request.getfixturevalue(name)
    expected = {"acrobot": ((6,), 1, True), "cheetah": ((17,), 6, False)}[name]
    obs_shape, action_dim, full_reset = expected
    assert env.observation_space.shape == obs_shape
    continuous = env.continuous_action_space if name == "acrobot" else env.action_space
    assert continuous == gymnasium.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
    assert params.max_steps_in_episode == 1000  # DM Control's time limit
    assert params.full_reset is full_reset and params.impl == "jax"
    for action in actions.reshape(-1, *env.action_space.shape):
        assert env.action_space.contains(action.astype(env.action_space.dtype))
    _assert_contract_shapes(env, default_out)
    _assert_contract_shapes(env, limited_out)


@pytest.mark.parametrize("name", ["acrobot", "cheetah"])
def test_matches_upstream_stepped_directly(name, request):
    """Same keys and actions: the adapter's observations and rewards are Playground's."""
    env, params, actions, out, _ = request.getfixturevalue(name)
    adapter, direct = out["adapter"], out["direct"]
    if name == "acrobot":  # Cheetah's upstream rollout starts from the adapter's reset
        np.testing.assert_array_equal(out["reset_obs"], out["direct_reset_obs"])
    np.testing.assert_allclose(adapter["obs"], direct["obs"], **_SAME_PROGRAM_TOL)
    np.testing.assert_allclose(adapter["reward"], direct["reward"], **_SAME_PROGRAM_TOL)
    np.testing.assert_array_equal(adapter["final_observation"], adapter["obs"])
    assert not direct["done"].any()
    assert not adapter["terminated"].any() and not adapter["truncated"].any()
    assert adapter["reward"].std() > 0 or name == "acrobot"  # sparse: often all zero


@pytest.mark.parametrize("name", ["acrobot", "cheetah"])
def test_time_limit_truncates_and_auto_resets(name, request):
    env, params, actions, _, out = request.getfixturevalue(name)
    adapter, direct = out["adapter"], out["direct"]
    ends = (np.arange(NUM_STEPS) + 1) % TIME_LIMIT == 0
    np.testing.assert_array_equal(adapter["truncated"], np.repeat(ends[:, None], NUM_ENVS, 1))
    assert not adapter["terminated"].any()
    # The first episode is the upstream rollout; its last observation survives the reset.
    first = slice(0, TIME_LIMIT)
    np.testing.assert_allclose(
        adapter["final_observation"][first], direct["obs"][first], **_SAME_PROGRAM_TOL
    )
    np.testing.assert_array_equal(adapter["final_observation"][~ends], adapter["obs"][~ends])
    # After each end, `obs` is the start of the next episode, not the final observation.
    assert not np.allclose(adapter["obs"][ends], adapter["final_observation"][ends])
    if params.full_reset:
        # A fresh upstream reset with the step's key.
        np.testing.assert_allclose(
            adapter["obs"][ends], out["fresh_obs"][ends], **_SAME_PROGRAM_TOL
        )
    else:
        # The cached first state; with actions of period TIME_LIMIT every episode replays
        # the first one.
        for t in np.flatnonzero(ends):
            np.testing.assert_array_equal(adapter["obs"][t], out["reset_obs"])
        replay = direct["obs"][np.arange(NUM_STEPS) % TIME_LIMIT]
        np.testing.assert_allclose(adapter["final_observation"], replay, **_SAME_PROGRAM_TOL)


def _acrobot_observation(model, data):
    upper, lower = model.body("upper_arm").id, model.body("lower_arm").id
    xmat = data.xmat[[upper, lower]]
    return np.concatenate([xmat[:, 2], xmat[:, 8], data.qvel])  # xz, zz entries, velocities


def _cheetah_observation(model, data):
    return np.concatenate([data.qpos[1:], data.qvel])


@pytest.mark.parametrize(
    ("name", "env_id", "observe", "atol"),
    [
        ("acrobot", "playground:AcrobotSwingupSparse", _acrobot_observation, 1e-5),
        ("cheetah", "playground:CheetahRun", _cheetah_observation, 1e-4),
    ],
)
def test_matches_mujoco_c_engine(name, env_id, observe, atol, request):
    """From the same start, MuJoCo's C engine (float64) gives the same observations.

    Playground reads body orientations right after `mjx.step`, whose kinematics are those
    of the positions before the step (`mj_step` does not recompute them after integrating),
    so the C side reads them at the same point. Tolerances: Acrobot (no contacts) drifts
    below 1e-6 in 30 steps; Cheetah (ground contacts, float32 solver) below 2e-5.
    """
    env, params, actions, out, _ = request.getfixturevalue(name)
    upstream = env.env.upstream if isinstance(env, Discretize) else env.upstream
    to_vector = env.to_continuous if isinstance(env, Discretize) else np.asarray
    model = upstream.mj_model
    data = mujoco.MjData(model)
    for b in range(NUM_ENVS):
        mujoco.mj_resetData(model, data)
        data.qpos[:], data.qvel[:] = out["qpos"][b], out["qvel"][b]
        observations = []
        for action in actions[:, b]:
            data.ctrl[:] = np.asarray(to_vector(action))
            for _ in range(upstream.n_substeps):
                mujoco.mj_step(model, data)
            observations.append(observe(model, data))
        np.testing.assert_allclose(out["adapter"]["obs"][:, b], observations, rtol=0, atol=atol)


_PLAYGROUND_SOLVER_OPTIONS = (
    "iterations",
    "ls_iterations",
    "integrator",
    "disableflags",
    "enableflags",
)


@pytest.mark.parametrize(
    ("name", "domain", "task"),
    [("acrobot", "acrobot", "swingup_sparse"), ("cheetah", "cheetah", "run")],
)
def test_matches_dm_control_suite(name, domain, task, request):
    """dm_control's own task, from the same start, with the same actions and solver options.

    Playground's XMLs trade accuracy for speed (Cheetah: 4 solver iterations and 8 line
    search iterations where dm_control has 100 and 50; Acrobot: 2 and 4, and Euler instead
    of RK4; both disable Euler damping), so the dm_control model gets Playground's options
    first: what is compared is the task (observations, rewards), not the solver settings.
    dm_control refreshes position-dependent quantities after each step, Playground does
    not (see `test_matches_mujoco_c_engine`), so Playground's orientation observations and
    rewards at step t are dm_control's at step t - 1; positions and velocities line up.
    Tolerance: 1e-5 (Acrobot), 1e-4 (Cheetah), as against the C engine.
    """
    suite = pytest.importorskip(
        "dm_control.suite", reason="dm_control is not installed (pip install 'jaxmb[dmc]')"
    )
    env, params, actions, out, _ = request.getfixturevalue(name)
    upstream = env.env.upstream if isinstance(env, Discretize) else env.upstream
    to_vector = env.to_continuous if isinstance(env, Discretize) else np.asarray
    atol = 1e-5 if name == "acrobot" else 1e-4
    for b in range(NUM_ENVS):
        dm_env = suite.load(domain, task)
        dm_env.reset()
        for option in _PLAYGROUND_SOLVER_OPTIONS:
            setattr(dm_env.physics.model.opt, option, getattr(upstream.mj_model.opt, option))
        with dm_env.physics.reset_context():
            dm_env.physics.data.qpos[:] = out["qpos"][b]
            dm_env.physics.data.qvel[:] = out["qvel"][b]
        initial = dm_env.task.get_observation(dm_env.physics)
        steps = [dm_env.step(np.asarray(to_vector(action))) for action in actions[:, b]]
        obs = np.stack([np.concatenate(list(s.observation.values())) for s in steps])
        rewards = np.array([s.reward for s in steps], np.float32)
        adapter_obs = out["adapter"]["obs"][:, b]
        adapter_reward = out["adapter"]["reward"][:, b]
        if name == "acrobot":
            lagged = np.concatenate([[np.concatenate(list(initial.values()))], obs[:-1]])
            np.testing.assert_allclose(adapter_obs[:, :4], lagged[:, :4], rtol=0, atol=atol)
            np.testing.assert_allclose(adapter_obs[:, 4:], obs[:, 4:], rtol=0, atol=atol)
        else:
            np.testing.assert_allclose(adapter_obs, obs, rtol=0, atol=atol)
        np.testing.assert_allclose(adapter_reward[1:], rewards[:-1], rtol=0, atol=atol)


def _avals(tree):
    return [(x.shape, x.dtype, x.weak_type) for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize(
    "env_id",
    [
        "playground:AcrobotSwingupSparse",
        # Tracing Cheetah takes about 20 s; Acrobot and brax cover the adapter's fix.
        pytest.param("playground:CheetahRun", marks=pytest.mark.heavy),
        "brax:inverted_pendulum",
    ],
)
def test_reset_and_step_states_have_one_type(env_id):
    """Same structure, dtypes and weak types, so `jit(step)` traces once (checked by shape)."""
    env, params = jaxmb.envs.make(env_id)
    _, state = jax.eval_shape(env.reset, jax.random.key(0), params)
    action = jnp.zeros(env.action_space.shape, jnp.float32)
    _, next_state, *_ = jax.eval_shape(env.step, jax.random.key(1), state, action, params)
    assert jax.tree.structure(state) == jax.tree.structure(next_state)
    assert _avals(state) == _avals(next_state)
    # The upstream env alone does differ (weak types), which the adapter removes.
    upstream_state = jax.eval_shape(env.upstream.reset, jax.random.key(0))
    upstream_next = jax.eval_shape(env.upstream.step, upstream_state, action)
    assert _avals(upstream_state) != _avals(upstream_next)


def test_jit_step_compiles_once():
    env, params = jaxmb.envs.make("playground:AcrobotSwingupSparse")
    reset = jax.jit(env.reset)
    step = jax.jit(env.step)
    key = jax.random.key(0)
    action = jnp.array([0.5], jnp.float32)
    _, state = reset(key, params)
    for _ in range(3):
        _, state, *_ = step(key, state, action, params)
    assert step._cache_size() == 1


def test_continuous_envs_have_no_mask_until_discretised():
    env, params = jaxmb.envs.make("playground:AcrobotSwingupSparse")
    with pytest.raises(TypeError, match="Discretize"):
        env.action_mask(None, params)
    with pytest.raises(TypeError, match="Discrete action space"):
        env.num_actions  # noqa: B018
    assert core.missing_env_members(env) == []
    assert env.id == "playground:AcrobotSwingupSparse"


def test_discretized_acrobot_mask_is_all_true(acrobot):
    env, params, actions, out, _ = acrobot
    assert env.num_actions == 5
    assert out["adapter"]["mask"].shape == (NUM_STEPS, NUM_ENVS, 5)
    assert out["adapter"]["mask"].all()


def test_make_applies_overrides():
    env, params = jaxmb.envs.make(
        "playground:AcrobotSwingupSparse", max_steps_in_episode=50, full_reset=False
    )
    assert params.max_steps_in_episode == 50 and not params.full_reset
    assert env.default_params() == params
    # brax's swimmer rejects the mjx backend, so it defaults to brax's own.
    swimmer, swimmer_params = jaxmb.envs.make("brax:swimmer")
    assert swimmer_params.backend == "generalized" and swimmer.action_space.shape == (2,)


@pytest.fixture(scope="module")
def inverted_pendulum():
    """brax inverted_pendulum under full-magnitude random pushes, so the pole falls."""

    def pushes(key, env, steps):
        signs = jax.random.rademacher(key, (steps, NUM_ENVS, *env.action_space.shape))
        return signs.astype(jnp.float32) * env.action_space.high

    env, params = jaxmb.envs.make("brax:inverted_pendulum")
    actions = pushes(jax.random.key(5), env, NUM_STEPS)
    program = _rollout_program(env, env.upstream, NUM_STEPS)
    return (
        env,
        params,
        np.asarray(actions),
        jax.device_get(program(jax.random.key(1), actions, params)),
    )


def test_brax_matches_upstream_and_terminates_when_the_pole_falls(inverted_pendulum):
    env, params, actions, out = inverted_pendulum
    assert params.full_reset and params.backend == "mjx" and params.max_steps_in_episode == 1000
    # brax declares each actuator's own range (here [-3, 3]).
    assert env.action_space == gymnasium.spaces.Box(-3.0, 3.0, (1,), np.float32)
    adapter, direct = out["adapter"], out["direct"]
    np.testing.assert_array_equal(out["reset_obs"], out["direct_reset_obs"])
    _assert_contract_shapes(env, out)
    assert not adapter["truncated"].any()
    for b in range(NUM_ENVS):
        falls = np.flatnonzero(direct["done"][:, b])
        assert falls.size, "the pole should fall within NUM_STEPS full pushes"
        end = falls[0]
        episode = slice(0, end + 1)
        # Up to and including the fall, the adapter is brax.
        np.testing.assert_allclose(
            adapter["final_observation"][episode, b], direct["obs"][episode, b], **_SAME_PROGRAM_TOL
        )
        np.testing.assert_allclose(
            adapter["reward"][episode, b], direct["reward"][episode, b], **_SAME_PROGRAM_TOL
        )
        np.testing.assert_array_equal(adapter["terminated"][episode, b], direct["done"][episode, b])
        assert adapter["terminated"][end, b] and not adapter["truncated"][end, b]
        # The fallen observation is kept; the next episode starts from a fresh reset.
        assert abs(adapter["final_observation"][end, b, 1]) > 0.2
        np.testing.assert_allclose(
            adapter["obs"][end, b], out["fresh_obs"][end, b], **_SAME_PROGRAM_TOL
        )
        assert abs(adapter["obs"][end, b, 1]) < 0.2


# About a minute of MJX compile on 2 cores; Acrobot and Cheetah cover the adapter and
# test_discretize.py the codebook: `make test-all`.
@pytest.mark.heavy
def test_humanoid_stand_in_codebook_mode():
    """Humanoid's 21 actuators as 43 codebook actions, a few steps under jit and vmap."""
    raw, params = jaxmb.envs.make("playground:HumanoidStand")
    env = Discretize(raw, "codebook", push=1.0)
    assert env.num_actions == 43 and env.observation_space.shape == (67,)
    assert not params.full_reset  # Humanoid's reset has no randomness

    @jax.jit
    def run(key):
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, NUM_ENVS), params)

        def body(state, key):
            action = jax.random.randint(key, (NUM_ENVS,), 0, env.num_actions, dtype=jnp.int32)
            keys = jax.random.split(key, NUM_ENVS)
            obs, state, reward, terminated, truncated, _ = jax.vmap(
                env.step, in_axes=(0, 0, 0, None)
            )(keys, state, action, params)
            mask = jax.vmap(env.action_mask, in_axes=(0, None))(state, params)
            return state, (obs, reward, terminated, truncated, mask)

        return obs, jax.lax.scan(body, state, jax.random.split(key, 3))[1]

    reset_obs, (obs, reward, terminated, truncated, mask) = jax.device_get(run(jax.random.key(0)))
    assert obs.shape == (3, NUM_ENVS, 67) and np.isfinite(obs).all()
    assert not np.allclose(obs[-1], reset_obs)  # the body moved
    assert ((reward >= 0) & (reward <= 1)).all()
    assert not terminated.any() and not truncated.any()
    assert mask.shape == (3, NUM_ENVS, 43) and mask.all()
