"""Where search is used (Hamrick et al. 2021): each switch changes what it says and nothing
else, the one-step targets equal hand-computed and mctx-computed ones, and the variants are
valid configs."""

import dataclasses
import functools
import os

import gymnasium
import jax
import jax.numpy as jnp
import mctx
import numpy as np
import pytest
from tiny_config import TINY, tiny

from jaxmb import config as config_lib
from jaxmb.agents.muzero import MuZero
from jaxmb.config import ConfigError
from jaxmb.experiments.variants import SWITCHES, variant_overrides
from jaxmb.targets import one_step_policy_target

# --------------------------------------------------------------------------- one-step target


def _toy_model(num_actions: int):
    """A deterministic model on a scalar latent s: r(s, a) = a - s, s' = s + a, v(s) = 2 s,
    discount 0.9 except 0 (terminal) after action 0."""

    def recurrent_fn(params, key, action, embedding):
        del params, key
        action = action.astype(jnp.float32)
        next_embedding = embedding + action
        out = mctx.RecurrentFnOutput(
            reward=action - embedding,
            discount=jnp.where(action == 0, 0.0, 0.9),
            prior_logits=jnp.zeros((embedding.shape[0], num_actions)),
            value=2.0 * next_embedding,
        )
        return out, next_embedding

    return recurrent_fn


def _hand_q(s: float, num_actions: int) -> np.ndarray:
    return np.array(
        [(a - s) + (0.0 if a == 0 else 0.9) * 2.0 * (s + a) for a in range(num_actions)]
    )


def test_softmax_one_step_target_is_the_softmax_of_q_over_legal_actions():
    q = jnp.array([1.0, 3.0, -2.0, 0.5])
    legal = jnp.array([True, True, False, True])
    got = one_step_policy_target(q, jnp.zeros(4), jnp.zeros(()), legal, mode="softmax",
                                 temperature=2.0)  # fmt: skip
    want = np.exp(np.array([1.0, 3.0, 0.5]) / 2.0)
    want /= want.sum()
    np.testing.assert_allclose(np.asarray(got)[[0, 1, 3]], want, rtol=1e-6)
    assert float(got[2]) == 0.0


def test_completed_q_one_step_target_equals_gumbel_muzero_visiting_every_action_once():
    """mctx's own `action_weights` for a search of A simulations, each action once."""
    num_actions, batch = 4, 3
    embedding = jnp.array([0.0, 1.0, -0.5])
    logits = jnp.array([[0.3, -0.2, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [2.0, -1.0, 0.5, 0.1]])
    root_value = jnp.array([0.2, -1.0, 3.0])
    root = mctx.RootFnOutput(prior_logits=logits, value=root_value, embedding=embedding)
    qtransform = functools.partial(
        mctx.qtransform_completed_by_mix_value, value_scale=0.1, maxvisit_init=50.0
    )
    out = jax.jit(
        lambda root: mctx.gumbel_muzero_policy(
            None, jax.random.key(0), root, _toy_model(num_actions), num_actions,
            max_num_considered_actions=num_actions, qtransform=qtransform, gumbel_scale=0.0,
        )
    )(root)  # fmt: skip
    assert (np.asarray(out.search_tree.summary().visit_counts) == 1).all()
    q = jnp.asarray([_hand_q(float(e), num_actions) for e in embedding], jnp.float32)
    target = jax.jit(
        jax.vmap(functools.partial(one_step_policy_target, mode="completed_q"))
    )  # fmt: skip
    got = target(q, logits, root_value, jnp.ones((batch, num_actions), bool))
    np.testing.assert_allclose(got, out.action_weights, rtol=1e-5, atol=1e-7)


class _HandModel(MuZero):
    """MuZero whose model is `_toy_model` on latent = obs[0] and whose prior is uniform."""

    def initial_inference(self, params, obs):
        latent = obs[:, 0]
        zeros = jnp.zeros((obs.shape[0], self.num_actions))
        return mctx.RootFnOutput(prior_logits=zeros, value=2.0 * latent, embedding=latent)


def test_agent_one_step_policy_targets_match_hand_computed_q():
    cfg = tiny(*variant_overrides("one_step"), "agent.search.one_step_temperature=0.5")
    num_actions = 3
    agent = _HandModel(
        cfg.agent, gymnasium.spaces.Box(-9, 9, (2,), np.float32), gymnasium.spaces.Discrete(3)
    )
    agent.recurrent_fn = _toy_model(num_actions)
    length = cfg.agent.loss.unroll_steps + cfg.agent.loss.td_steps + 1
    rng = np.random.default_rng(0)
    states = rng.normal(size=(2, length)).astype(np.float32)
    batch = {
        "obs": jnp.stack([states, jnp.zeros_like(states)], -1),
        "action": jnp.zeros((2, length), jnp.int32),
        "reward": jnp.zeros((2, length)),
        "terminated": jnp.zeros((2, length), bool),
        "truncated": jnp.zeros((2, length), bool),
        "policy": jnp.full((2, length, num_actions), 1 / 3),
        "value": jnp.zeros((2, length)),
        "final_value": jnp.zeros((2, length)),
        "action_mask": jnp.ones((2, length, num_actions), bool).at[1, :, 2].set(False),
    }
    targets = jax.jit(agent.compute_targets)(None, batch, jax.random.key(0))
    assert int(targets["simulations"]) == 0
    for b in range(2):
        for k in range(cfg.agent.loss.unroll_steps + 1):
            q = _hand_q(float(states[b, k]), num_actions)
            legal = [0, 1, 2] if b == 0 else [0, 1]
            want = np.zeros(num_actions)
            want[legal] = np.exp((q[legal] - q[legal].max()) / 0.5)
            want /= want.sum()
            np.testing.assert_allclose(targets["policy"][b, k], want, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- switches


def test_variant_table_and_config_checks():
    with pytest.raises(ConfigError, match="did you mean 'learn_data'"):
        variant_overrides("learn_dat")
    with pytest.raises(ConfigError, match="reanalyse_fraction=1") as err:
        tiny("agent.search.for_acting_train=false")
    assert err.value.key == "agent.loss.reanalyse_fraction"
    with pytest.raises(ConfigError, match="no tree is built"):
        tiny("agent.search.for_targets=false", "agent.loss.reanalyse_fraction=0.5")
    with pytest.raises(ConfigError) as err:
        tiny("agent.search.for_targets=false", "agent.loss.bootstrap=stored")
    assert err.value.key == "agent.loss.bootstrap"
    # Learn+Data may keep part of its batch on the stored search policies.
    cfg = config_lib.load(None, variant_overrides("learn_data", reanalyse_fraction=0.25))
    assert cfg.agent.loss.reanalyse_fraction == 0.25
    assert config_lib.load(None, variant_overrides("learn")).agent.loss.reanalyse_fraction == 1.0


# --------------------------------------------------------------------------- experiment


def test_plots_take_seeds_that_agree(tmp_path):
    """Two seeds with the same return: a zero-width interval, which the summary's 3-decimal
    rounding puts inside the mean (-0.6875 in [-0.688, -0.688]). The Go study's variant plot
    crashed on it ("'yerr' must not contain negative values")."""
    from jaxmb.experiments.plots import mean_intervals, planning_plots

    rows = [
        {"variant": v, "seed": s, "test_budget": 0, "return": r}
        for v, r in (("learn_data", -0.6875), ("data", 0.5))
        for s in (0, 1)
    ]
    assert mean_intervals(rows, "variant")["learn_data"]["ci95"][1] < -0.6875
    (tmp_path / "plots").mkdir()
    paths = planning_plots(str(tmp_path), rows, rows, [], [], {}, title="agreeing seeds")
    assert set(paths) == {"variants", "test_budget"}
    assert all(os.path.getsize(p) > 0 for p in paths.values())


def test_planning_experiment_switches_tables_plots_and_resume(tmp_path, monkeypatch):
    """Two variants through the experiment runner. Learn and Data flip both training
    switches in opposite ways, so between them each switch is seen on and off: simulations
    counted from the trees run while acting only with for_acting_train and for targets only
    with for_targets. (One-Step, no search at all, runs in tests/test_train.py.)

    The same programs carry rollouts past the tree and the env as the search model (Data
    acts with it), and the evaluations a depth cap and D_UCT: each piece is checked against
    references in test_search_variants.py; here they run inside the compiled loop."""
    import csv

    from jaxmb import run as run_lib
    from jaxmb.experiments import planning

    overrides = [o for o in TINY if not o.startswith("train.total_env_steps")]
    spec = planning.PlanningSpec(
        base="configs/muzero/cartpole.yaml",
        overrides=(*overrides, "train.total_env_steps=48", "train.eval_every=32",
                   "run.progress=false", "run.tensorboard=false",
                   "agent.search.rollout_horizon=2", "agent.search.rollout_mix=0.5",
                   "agent.search.model=env"),
        variants=("learn", "data"),
        seeds=2, test_budgets=(0,), train_budgets=(), depth_budget=3,
        max_depths=(1,), uct_depths=(1,), eval_episodes=2,
    )  # fmt: skip
    summary = planning.run_planning(spec, name="study", root=str(tmp_path), quiet=True)
    out = tmp_path / "study"
    cfg = planning.variant_config(spec, "learn")
    for variant in spec.variants:
        targets, acting_train, _ = SWITCHES[variant]
        metrics = np.load(out / "variants" / variant / "metrics.npz")
        acting = metrics["search/acting_simulations"]
        per_iteration = (
            cfg.env.num_envs * cfg.train.rollout_steps * cfg.agent.search.num_simulations
        )
        assert (acting == (per_iteration if acting_train else 0)).all(), (variant, acting)
        target = metrics["search/target_simulations"][metrics["learning"] > 0]
        # K = 2, n = 2: positions 0..2 (policy) and 2..4 (bootstrap) are searched.
        per_update = cfg.replay.batch_size * 5 * cfg.agent.search.num_simulations
        assert target.size and (target == (per_update if targets else 0)).all(), (variant, target)

    with open(out / "variants.csv") as f:
        rows = list(csv.DictReader(f))
    # Neither variant searches at test time: both are evaluated with the prior.
    assert [(r["variant"], r["seed"], r["test_budget"]) for r in rows] == [
        ("learn", "0", "0"), ("learn", "1", "0"), ("data", "0", "0"), ("data", "1", "0"),
    ]  # fmt: skip
    with open(out / "budgets.csv") as f:
        assert len(list(csv.DictReader(f))) == 2 * 1 * 2  # variants x budgets x seeds
    with open(out / "depths.csv") as f:
        kinds = {(r["kind"], r["depth"]) for r in csv.DictReader(f)}
        assert kinds == {("max_depth", "1"), ("uct_depth", "1")}
    for name in ("variants", "test_budget", "depth", "learning_curves"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 0, name
    assert set(summary["variants"]) == {"learn", "data"}

    # Rerunning the finished experiment trains nothing again, and evaluation settings may
    # change; training settings may not.
    def no_training(*args, **kwargs):
        raise AssertionError("a finished variant was trained again")

    monkeypatch.setattr(run_lib, "train_run", no_training)
    fewer = dataclasses.replace(spec, test_budgets=(0,), max_depths=(), uct_depths=())
    again = planning.run_planning(fewer, name="study", root=str(tmp_path), quiet=True)
    assert again["variants"] == summary["variants"]
    with pytest.raises(ConfigError, match="other seeds"):
        planning.run_planning(
            dataclasses.replace(spec, seeds=3), name="study", root=str(tmp_path), quiet=True
        )


@pytest.mark.heavy  # a conv MiniPacman program and 8 evaluation programs: minutes on a CPU
def test_planning_generalisation_writes_every_level_set_model_and_budget(tmp_path):
    """`planning-generalisation` on a tiny MiniPacman: one row per level set, search model,
    test budget and seed (the env model is not used at budget 0), a plot, and the training
    levels in the agent's config."""
    import csv

    from jaxmb.experiments import generalisation

    spec = generalisation.GeneralisationSpec(
        overrides=(
            "train.total_env_steps=128", "train.eval_every=64", "env.num_envs=4",
            "env.num_eval_envs=2", "env.eval_max_steps=10", "replay.capacity=512",
            "replay.min_size=32", "replay.batch_size=8", "agent.search.num_simulations=2",
            "agent.network.conv_channels=4", "agent.network.latent_dim=8",
            "run.progress=false", "run.tensorboard=false",
        ),
        levels=2, seeds=2, test_budgets=(0, 2), eval_episodes=2,
    )  # fmt: skip
    summary = generalisation.run_generalisation(spec, name="g", root=str(tmp_path), quiet=True)
    out = tmp_path / "g"
    with open(out / "generalisation.csv") as f:
        rows = list(csv.DictReader(f))
    cells = {(r["levels"], r["model"], r["test_budget"]) for r in rows}
    assert cells == {
        (levels, model, budget)
        for levels in ("train levels", "unseen levels")
        for model, budget in (("learned", "0"), ("learned", "2"), ("env", "2"))
    }
    assert len(rows) == len(cells) * 2  # seeds
    assert (out / "plots" / "generalisation.png").stat().st_size > 0
    agent = config_lib.load(str(out / "agent" / "config.yaml"), [])
    assert agent.env.params["num_levels"] == 2 and agent.env.params["start_level"] == 0
    assert summary["levels"] == 2


def test_every_experiment_preset_loads_and_gives_valid_configs():
    """configs/experiments/*.yaml: each is a planning, generalisation, SSL or transfer spec
    whose base preset, overrides and variants make valid configs (loading only; nothing is
    traced)."""
    import glob
    import os

    import yaml

    from jaxmb.experiments import generalisation, planning
    from jaxmb.experiments import ssl_generalisation as ssl_study
    from jaxmb.experiments import transfer as transfer_study

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = sorted(glob.glob(os.path.join(root, "configs", "experiments", "*.yaml")))
    assert len(paths) >= 4
    for path in paths:
        with open(path) as f:
            data = yaml.safe_load(f)
        if "ssl" in data:
            spec = ssl_study.SSLGeneralisationSpec(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
            )
            for levels in spec.levels:
                ssl_study.level_config(spec, levels)
        elif "pretrain_env_steps" in data:
            spec = transfer_study.TransferSpec(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
            )
            for agent in spec.agents:
                transfer_study.pretrain_config(spec, agent)
                transfer_study.finetune_config(spec, agent)
        elif "levels" in data:
            spec = generalisation.GeneralisationSpec(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
            )
            base = planning.PlanningSpec(base=spec.base, overrides=spec.overrides)
            planning.variant_config(base, "learn_data_eval", ["env.params.num_levels=5"])
        else:
            spec = planning.load_spec(path)
            for variant in spec.variants:
                planning.variant_config(spec, variant)
