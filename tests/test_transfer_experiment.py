"""The transfer study (Walker et al. 2023): random-behaviour pre-training and the experiment."""

import csv
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

import jaxmb.envs
from jaxmb import presets
from jaxmb.envs.wrappers import EpisodeStatistics, VectorEnv
from jaxmb.experiments import transfer as study
from jaxmb.loop.collect import collect


class _AlwaysZero:
    """An agent that always picks action 0 and records nothing."""

    num_actions = 2

    def record_spec(self):
        return {}

    def act(self, state, obs, key, *, training, action_mask=None, env_state=None):
        return jnp.zeros(obs.shape[:1], jnp.int32), {}

    def bootstrap_value(self, state, obs):
        return jnp.zeros(obs.shape[:1])


def test_random_action_prob_replaces_the_agents_actions_by_uniform_ones():
    """Action 1 is never the agent's; a uniform random action is 1 half the time."""
    env, params = jaxmb.envs.make("gymnax:CartPole-v1")
    venv = VectorEnv(EpisodeStatistics(env), 16)
    obs, env_state = venv.reset(jax.random.key(0), params)

    run = jax.jit(
        lambda key, p: collect(
            _AlwaysZero(),
            venv,
            params,
            None,
            env_state,
            obs,
            key,
            rollout_steps=64,
            random_action_prob=p,
        )[2]["action"]
    )

    def actions(prob):
        return np.asarray(run(jax.random.key(1), prob))

    assert actions(None).sum() == 0  # no random-action code at all
    for prob, share in ((1.0, 0.5), (0.25, 0.125)):  # traced, as a swept value is
        # 1,024 draws each: 0.03 is 4 standard errors at worst.
        assert abs(actions(jnp.float32(prob)).mean() - share) < 0.03


def _spec(**changes):
    quick = dict(study.QUICK)
    return study.TransferSpec(
        **{
            **quick,
            "agents": ("muzero",),
            "sets": {"muzero": {"scratch": [], "encoder+model": ["encoder", "model"]}},
            **changes,
        }
    )


def test_spec_checks_agents_and_the_ablations_own_set():
    with pytest.raises(study.ConfigError, match="agents") as err:
        _spec(agents=("dreamer",))
    assert err.value.key == "agents"
    with pytest.raises(study.ConfigError, match="ablation"):
        _spec(sets={"muzero": {study.RANDOM_SET: ["encoder"]}})
    spec = _spec()
    assert study.finetune_sets(spec, "muzero") == ["scratch", "encoder+model", study.RANDOM_SET]
    members = study.finetune_members(spec, "muzero", "pre", _Parts())
    assert members[0] == (None, 0, ())  # scratch, seed 0
    assert members[2] == ("pre", 0, ("encoder", "model"))
    assert members[4] == ("pre", 2, ("a", "b"))  # the random-behaviour member of seed 0
    config = study.pretrain_config(spec, "muzero")
    assert config.reward.transform == "rnd" and config.reward.env_weight == 0.0
    assert config.run.num_seeds == 4  # explore and random, 2 seeds each
    assert config.reward.intrinsic_weight == 1.0
    scaled = study.pretrain_config(_spec(intrinsic_weight=50.0), "muzero")
    assert scaled.reward.intrinsic_weight == 50.0
    with pytest.raises(study.ConfigError, match="intrinsic_weight"):
        _spec(intrinsic_weight=0.0)
    assert study.finetune_config(spec, "muzero").reward.transform == "identity"


class _Parts:
    parts = {"a": (), "b": ()}


# `make test-all`: two MuZero programs take minutes to compile and run on 2 cores; the default
# run covers the per-member transfer (test_seams.py), the random behaviour and the spec above.
@pytest.mark.heavy
def test_transfer_experiment_writes_its_tables_and_plots_and_resumes(tmp_path):
    spec = _spec()
    summary = study.run_transfer(spec, name="t", root=str(tmp_path), quiet=True)
    out = summary["dir"]
    with open(os.path.join(out, "transfer.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["set"] for r in rows] == [
        s for s in ("scratch", "encoder+model", study.RANDOM_SET) for _ in range(2)
    ]
    assert all(np.isfinite(float(r["final_return"])) for r in rows)
    with open(os.path.join(out, "pretrain.csv")) as f:
        assert [r["set"] for r in csv.DictReader(f)] == ["explore"] * 2 + ["random"] * 2
    for plot in ("curves", "final"):
        assert os.path.getsize(summary["plots"][plot]) > 0
    assert summary["finetune"]["muzero/scratch"]["final_return"]["seeds"] == 2
    # Pre-training logged the task reward it never trained on.
    with open(os.path.join(out, "pretrain_muzero", "summary.json")) as f:
        assert json.load(f)["final_eval_return"]
    again = study.run_transfer(spec, name="t", root=str(tmp_path), quiet=True)
    assert again["finetune"] == summary["finetune"]
    for run in ("pretrain_muzero", "finetune_muzero"):
        with open(os.path.join(out, run, "summary.json")) as f:
            assert json.load(f)["already_trained"]


# `make test-all`: two MuZero programs, 65k + 33k env steps (17 minutes on a 2-core box that ran
# two studies beside it).
@pytest.mark.heavy
def test_rnd_pretraining_reaches_mountaincars_goal_in_fewer_task_steps_than_scratch(tmp_path):
    """The issue's learning test, as the preset `transfer_mountaincar_cpu` runs it: MuZero
    pre-trained on RND alone, then fine-tuned on the task with every part transferred, reaches a
    greedy return of -180 (the goal within 180 steps on average over 8 evaluation episodes;
    scratch agents sit at -200, the time limit) in fewer task steps than from scratch, over
    3 seeds. A member that never reaches it counts as the whole budget plus one evaluation."""
    path = presets.resolve("transfer_mountaincar_cpu", group="experiments")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    spec = study.TransferSpec(**{**data, "random_ablation": False})
    summary = study.run_transfer(spec, name="mc", root=str(tmp_path), quiet=True)
    with open(os.path.join(summary["dir"], "transfer.csv")) as f:
        rows = list(csv.DictReader(f))
    never = spec.finetune_env_steps + 2048  # one evaluation (train.eval_every) past the budget
    steps = {
        name: np.array(
            [
                float(r["steps_to_target"]) if r["steps_to_target"] != "nan" else never
                for r in rows
                if r["set"] == name
            ]
        )
        for name in ("scratch", "all")
    }
    assert steps["scratch"].size == steps["all"].size == 3
    assert steps["all"].mean() < steps["scratch"].mean(), steps
    assert (steps["all"] < never).sum() >= 2, steps  # most seeds reach it, not one lucky one
