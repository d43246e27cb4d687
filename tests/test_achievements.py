"""Achievements: the env hook (`achievement_info_keys`), the loop's per-iteration counts, the
success rates over a run and the Crafter score (Hafner 2021) in `summary.json`."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_config import TINY

import jaxmb.envs
from jaxmb import config as config_lib
from jaxmb import run as run_lib
from jaxmb.agents.registry import unread_keys, with_kind
from jaxmb.envs import core
from jaxmb.envs.craftax_adapter import crafter_score
from jaxmb.loop import build as build_lib
from jaxmb.loop import program as program_lib
from jaxmb.train import make_train


def _tiny_q(*extra):
    """TINY for the q_learning agent: no search, so its program compiles in a few seconds."""
    base = config_lib.load(None, [o for o in TINY if not o.startswith(unread_keys("q_learning"))])
    return config_lib.configlib.apply_overrides(with_kind(base, "q_learning"), list(extra))


# ----------------------------------------------------------------------------- the score


def test_crafter_score_of_all_zero_and_all_hundred():
    assert crafter_score([0.0] * 22) == 0.0
    assert crafter_score([100.0] * 22) == pytest.approx(100.0, rel=1e-12)


def test_crafter_score_by_hand():
    # Rates 0, 3, 8 and 80: 1 + s = 1, 4, 9, 81, whose product is 2916 = 54^2, so the
    # geometric mean is 2916^(1/4) = sqrt(54) = 7.3485 and the score sqrt(54) - 1 = 6.3485.
    # (The arithmetic mean, 22.75, would let one easy achievement hide three hard ones.)
    assert crafter_score([0.0, 3.0, 8.0, 80.0]) == pytest.approx(math.sqrt(54) - 1, rel=1e-12)
    # A mapping gives the same score; the names do not matter.
    rates = {"collect_wood": 80.0, "place_table": 8.0, "eat_cow": 3.0, "wake_up": 0.0}
    assert crafter_score(rates) == pytest.approx(math.sqrt(54) - 1, rel=1e-12)
    # One achievement at 100% among 21 never unlocked: 101^(1/22) - 1 = 0.2336.
    assert crafter_score([100.0] + [0.0] * 21) == pytest.approx(101 ** (1 / 22) - 1, rel=1e-12)


@pytest.mark.parametrize("rates", [[], [-1.0, 50.0], [100.5], [float("nan")]])
def test_crafter_score_rejects_what_is_not_a_list_of_percentages(rates):
    with pytest.raises(ValueError):
        crafter_score(rates)


# ----------------------------------------------------------------------------- success rates


def test_success_rates_sum_counts_over_every_iteration():
    # Two seeds, four iterations; the last iteration of seed 1 did not run (-1).
    metrics = {
        "train/episodes": np.array([[0, 2, 3, 5], [4, 0, 4, -1]], np.int32),
        "train/achievements/collect_wood": np.array([[0, 2, 1, 5], [1, 0, 0, -1]], np.int32),
        "train/achievements/wake_up": np.array([[0, 0, 0, 0], [0, 0, 2, -1]], np.int32),
        "eval/episode_return": np.full((2, 4), np.nan, np.float32),
    }
    rates = run_lib.achievement_success_rates(metrics)
    # Seed 0: 8 of 10 episodes unlocked collect_wood, none woke up; seed 1: 1 and 2 of 8.
    assert rates == {"collect_wood": [80.0, 12.5], "wake_up": [0.0, 25.0]}
    summary = run_lib.achievement_summary("craftax:Craftax-Classic-Symbolic-v1", metrics)
    scores = [crafter_score([80.0, 0.0]), crafter_score([12.5, 25.0])]
    assert summary["crafter_score"] == scores
    assert summary["crafter_score_mean"] == pytest.approx(np.mean(scores))
    # Only craftax envs get a Crafter score; any env with achievements gets the rates.
    other = run_lib.achievement_summary("jaxmb:Sokoban-v0", metrics)
    assert other["achievement_success_rates"] == rates
    assert other["crafter_score"] is None and other["crafter_score_mean"] is None


def test_success_rates_without_episodes_or_achievements():
    metrics = {
        "train/episodes": np.zeros((1, 3), np.int32),
        "train/achievements/collect_wood": np.zeros((1, 3), np.int32),
    }
    summary = run_lib.achievement_summary("craftax:Craftax-Classic-Symbolic-v1", metrics)
    assert summary == {
        "achievement_success_rates": {"collect_wood": [None]},
        "crafter_score": [None],
        "crafter_score_mean": None,
    }
    del metrics["train/achievements/collect_wood"]
    assert run_lib.achievement_summary("gymnax:CartPole-v1", metrics) == {
        "achievement_success_rates": None,
        "crafter_score": None,
        "crafter_score_mean": None,
    }


# ----------------------------------------------------------------------------- the hook


def test_wrappers_forward_the_achievements_an_env_declares():
    env, _ = jaxmb.envs.make("gymnax:CartPole-v1")
    assert core.achievement_info_keys(env) == {}
    env.achievement_info_keys = {"balance": "Achievements/balance"}
    stack = jaxmb.envs.VectorEnv(
        jaxmb.envs.EpisodeStatistics(jaxmb.envs.ActionRepeat(env, 2)), num_envs=2
    )
    assert core.achievement_info_keys(stack) == {"balance": "Achievements/balance"}


# ----------------------------------------------------------------------------- the loop


class _CartPoleAchievements(jaxmb.envs.Wrapper):
    """CartPole that reports three achievements on every step, the loop reading them only
    where an episode ends: `fell` (100 where the pole fell), `always` (100) and `never` (0)."""

    achievement_info_keys = {
        "fell": "Achievements/fell",
        "always": "Achievements/always",
        "never": "Achievements/never",
    }

    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action, params)
        info = {
            **info,
            "Achievements/fell": 100.0 * terminated.astype(jnp.float32),
            "Achievements/always": jnp.full((), 100.0, jnp.float32),
            "Achievements/never": jnp.zeros((), jnp.float32),
        }
        return obs, state, reward, terminated, truncated, info


LIMIT = 15  # steps of a CartPole episode in the loop test


def test_the_loop_counts_the_ended_episodes_that_unlocked_each_achievement(monkeypatch):
    def build_env(config):
        env, params = build_lib.build_env(config)
        return _CartPoleAchievements(env), params

    monkeypatch.setattr(program_lib, "build_env", build_env)
    # Episodes end by truncation after 15 steps, or earlier where the pole falls.
    config = _tiny_q(f"env.params={{max_steps_in_episode: {LIMIT}}}", "train.eval_every=0")
    _, metrics = jax.jit(make_train(config, num_seeds=1))(jax.random.split(jax.random.key(0), 1))
    metrics = {k: np.asarray(v) for k, v in metrics.items()}
    episodes = metrics["train/episodes"]  # [1, 10]
    steps_per_env = config.num_iterations * config.train.rollout_steps
    assert episodes.sum() >= config.env.num_envs * (steps_per_env // LIMIT)
    counts = {k: v for k, v in metrics.items() if k.startswith("train/achievements/")}
    assert set(counts) == {f"train/achievements/{n}" for n in ("fell", "always", "never")}
    for name, count in counts.items():
        assert count.dtype == np.int32 and count.shape == episodes.shape, name
    # `always` is reported on every step but counted once per ended episode.
    np.testing.assert_array_equal(counts["train/achievements/always"], episodes)
    np.testing.assert_array_equal(counts["train/achievements/never"], 0)
    fell = counts["train/achievements/fell"]
    assert ((fell >= 0) & (fell <= episodes)).all()
    assert 0 < fell.sum() < episodes.sum()  # some poles fell, some episodes ran out of time

    summary = run_lib.summarize(config, metrics, compile_seconds=0.0, run_seconds=1.0)
    assert summary["achievement_success_rates"] == {
        "always": [100.0],
        "fell": [100.0 * fell.sum() / episodes.sum()],
        "never": [0.0],
    }
    assert summary["crafter_score"] is None  # not a craftax env


def test_an_env_without_achievements_logs_no_achievement_metrics():
    shapes = jax.eval_shape(make_train(_tiny_q("train.eval_every=0")), jax.random.key(0))[1]
    assert "train/episodes" in shapes
    assert not [k for k in shapes if k.startswith("train/achievements/")]


# ----------------------------------------------------------------------------- a craftax run

TIME_LIMIT = 3  # env steps per craftax episode: several episodes end in each iteration
PRESET = 11  # every episode starts with the first 11 achievements unlocked (see below)


# About 20 s on 2 cores, nearly all of it compiling craftax's world generation and step; the
# loop's counting has the CartPole test above and the adapter's info its own tests.
@pytest.mark.heavy
def test_a_craftax_run_counts_achievements_and_scores_them(monkeypatch):
    pytest.importorskip("craftax")
    from jaxmb.envs.craftax_adapter import CraftaxEnv

    # A random policy unlocks next to nothing in 3 steps, which would make every count 0.
    # Each new world (the adapter's own resets included) starts with the first PRESET
    # achievements unlocked, so their counts must equal the episodes exactly.
    reset = CraftaxEnv.reset

    def reset_with_achievements(self, key, params):
        obs, state = reset(self, key, params)
        return obs, state.replace(achievements=state.achievements.at[:PRESET].set(True))

    monkeypatch.setattr(CraftaxEnv, "reset", reset_with_achievements)
    config = _tiny_q(
        "env.id=craftax:Craftax-Classic-Symbolic-v1",
        f"env.params={{max_timesteps: {TIME_LIMIT}}}",
        "env.num_envs=2",
        "train.rollout_steps=4",
        "train.total_env_steps=32",  # 4 iterations of 8 env steps
        "train.eval_every=0",  # no evaluation: it would compile craftax's step once more
        "replay.min_size=16",
    )
    train = make_train(config, num_seeds=1)
    declared = list(core.achievement_info_keys(train.loop.env))  # craftax's enum order
    names, preset = set(declared), set(declared[:PRESET])
    assert len(names) == 22
    _, metrics = jax.jit(train)(jax.random.split(jax.random.key(0), 1))
    metrics = {k: np.asarray(v) for k, v in metrics.items()}

    episodes = metrics["train/episodes"]  # [1, 4]
    counts = {name: metrics[f"train/achievements/{name}"] for name in names}
    # Each env's episodes end every TIME_LIMIT-th of its 16 steps: 5 ends per env.
    assert episodes.sum() == 2 * (16 // TIME_LIMIT)
    for name, count in counts.items():
        assert count.dtype == np.int32 and count.shape == episodes.shape, name
        assert ((count >= 0) & (count <= episodes)).all(), name
        if name in preset:
            np.testing.assert_array_equal(count, episodes, err_msg=name)

    summary = run_lib.summarize(config, metrics, compile_seconds=0.0, run_seconds=1.0)
    rates = {name: 100.0 * count.sum() / episodes.sum() for name, count in counts.items()}
    assert summary["achievement_success_rates"] == {name: [rates[name]] for name in sorted(names)}
    expected = math.exp(np.mean([math.log(1 + rate) for rate in rates.values()])) - 1
    assert expected > 100 ** (PRESET / 22) - 1 - 1e-9  # half the rates at 100%: at least 9
    assert summary["crafter_score"] == [pytest.approx(expected, rel=1e-12)]
    assert summary["crafter_score_mean"] == pytest.approx(expected, rel=1e-12)
