"""Unsupervised exploration, then transfer by part (Walker et al. 2023): MuZero against a
model-free control (the Q-learning baseline), each pre-trained on an intrinsic reward alone and
fine-tuned on the task from different sets of transferred parts.

    python -m jaxmb experiment transfer --env craftax:Craftax-Classic-Symbolic-v1 --seeds 5

1. **Pre-training**, one program per agent (`pretrain_<agent>/`): the reward transform
   (`transform`: `rnd` or `disagreement`, `jaxmb.rewards`) with the task weight at 0 and the
   intrinsic weight at 1 for the whole run, so the task reward never reaches the agent's
   targets; it is still logged (`train/episode_return`, and the greedy `eval/episode_return`).
   With `random_ablation`, the program's second half of members acts uniformly at random
   (`train.random_action_prob=1`, a traced hyperparameter) while learning on the same
   losses: its model has seen undirected data only.
2. **Fine-tuning**, one program per agent (`finetune_<agent>/`), on the task reward alone:
   every transfer set of `sets[agent]` times every seed is a member. A member copies its
   set's parts (`jaxmb.transfer`: `encoder`, `prior_heads`, `model`, `dynamics_heads`,
   `q_head`) from the same seed's exploring pre-trained member and starts the rest fresh,
   optimiser included (`scratch` copies nothing). With `random_ablation`, the set `all
   (random data)` copies every part from the random-behaviour member instead, which separates
   "the model matters" from "the exploration data matters". The sets differ only in initial
   parameters, so each agent's fine-tuning is one compile (`transfer.mixed_source`).
3. Writes `transfer.csv` (per agent, set and seed: the final greedy return, the mean greedy
   return over fine-tuning (the area under the curve), and on Craftax the Crafter score of
   the fine-tuning episodes, `jaxmb.envs.craftax_adapter.crafter_score`), `pretrain.csv`
   (the same for pre-training, per behaviour), `summary.json` (means with 95% t intervals)
   and plots: `plots/curves.png` (fine-tuning curves per set, one panel per agent),
   `plots/final.png` (bars of the final return) and on Craftax `plots/crafter.png` (bars of
   the Crafter score, with published anchors where `anchors` gives them).

Every run directory resumes; a finished pre-training run is reused by its fine-tuning run.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmb import config as config_lib
from jaxmb.config import Config, ConfigError
from jaxmb.experiments import planning, plots
from jaxmb.plotting import _save, plt
from jaxmb.stats import t_interval

ALL_MUZERO = ("encoder", "prior_heads", "model", "dynamics_heads")
SETS: dict[str, dict[str, tuple[str, ...]]] = {
    "muzero": {
        "scratch": (),
        "all": ALL_MUZERO,
        "encoder": ("encoder",),
        "encoder+prior": ("encoder", "prior_heads"),
        "encoder+model": ("encoder", "model", "dynamics_heads"),
    },
    "q_learning": {
        "scratch": (),
        "encoder": ("encoder",),
        "encoder+q": ("encoder", "q_head"),
    },
}
RANDOM_SET = "all (random data)"


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransferSpec:
    """What `run_transfer` trains and measures.

    Attributes:
      base: MuZero's preset (a name or a YAML path); the baseline runs the same config with
        `agent.kind=q_learning` (keys it does not read back at their defaults).
      overrides, pretrain_overrides, finetune_overrides: dotted overrides of `base`, for
        both phases and for each.
      agents: `muzero` and/or `q_learning`.
      transform: the intrinsic reward of pre-training (`rnd`, `disagreement`, `count`).
      intrinsic_weight: its weight in pre-training's trained reward (`reward.intrinsic_weight`;
        the task reward's is 0). RND's reward, a novelty over the std of intrinsic returns, is
        of order 1e-3 and below once the predictor has learnt a small env, which MuZero's
        categorical reward and value heads barely resolve; a larger weight scales it up.
      seeds: seeds per set.
      pretrain_env_steps, finetune_env_steps: each phase's budget per member.
      sets: agent -> {set name: parts}; default `SETS`.
      random_ablation: also pre-train with random actions and fine-tune the set
        `all (random data)` from it.
      anchors: published Crafter scores to draw beside ours ({label: score}).
      target_return: if set, `transfer.csv` gives each member's `steps_to_target`: the env
        steps of the first greedy evaluation at or above it (NaN if none).
    """

    base: str = "muzero/craftax_classic"
    overrides: tuple[str, ...] = ()
    pretrain_overrides: tuple[str, ...] = ()
    finetune_overrides: tuple[str, ...] = ()
    agents: tuple[str, ...] = ("muzero", "q_learning")
    transform: str = "rnd"
    intrinsic_weight: float = 1.0
    seeds: int = 3
    pretrain_env_steps: int = 1_000_000
    finetune_env_steps: int = 1_000_000
    sets: dict = dataclasses.field(default_factory=lambda: {k: dict(v) for k, v in SETS.items()})
    random_ablation: bool = True
    anchors: dict = dataclasses.field(default_factory=dict)
    target_return: float | None = None

    def __post_init__(self) -> None:
        unknown = [a for a in self.agents if a not in SETS]
        if unknown or not self.agents:
            raise ConfigError(
                f"agents are muzero and q_learning; got {list(self.agents)}", "agents"
            )
        if self.seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {self.seeds}", "seeds")
        if not self.intrinsic_weight > 0:
            raise ConfigError(
                f"intrinsic_weight must be > 0, got {self.intrinsic_weight}", "intrinsic_weight"
            )
        sets = {agent: dict(self.sets.get(agent, SETS[agent])) for agent in self.agents}
        for named in sets.values():
            for name, parts in named.items():
                named[name] = tuple(parts or ())
                if name == RANDOM_SET:
                    raise ConfigError(f"'{RANDOM_SET}' is the ablation's own set", "sets")
        object.__setattr__(self, "sets", sets)


QUICK: dict[str, Any] = {
    "seeds": 2,
    "pretrain_env_steps": 512,
    "finetune_env_steps": 512,
    "overrides": (
        "env.num_envs=4",
        "env.num_eval_envs=2",
        "env.eval_max_steps=50",
        "train.rollout_steps=4",
        "train.replay_ratio=0.25",
        "train.eval_every=256",
        "train.log_every=256",
        "replay.capacity=1024",
        "replay.min_size=128",
        "replay.batch_size=16",
        "agent.network.hidden_sizes=[32]",
        "agent.network.latent_dim=16",
        "agent.network.dynamics_hidden_sizes=[32]",
        "agent.network.head_hidden_sizes=[16]",
        "agent.search.num_simulations=4",
        "agent.search.max_num_considered_actions=4",
        "agent.loss.unroll_steps=2",
        "agent.loss.td_steps=3",
        "agent.optim.warmup_updates=0",
    ),
}


def _config(spec: TransferSpec, agent: str, phase_overrides, members: int, steps: int) -> Config:
    from jaxmb.agents.registry import with_kind

    base = spec.base if os.path.exists(spec.base) else spec.base.removesuffix(".yaml")
    overrides = [
        *spec.overrides,
        *phase_overrides,
        f"train.total_env_steps={steps}",
        f"run.num_seeds={members}",
    ]
    config = config_lib.load(base, overrides)
    if agent != "muzero":
        config = config_lib.configlib.apply_overrides(with_kind(config, agent), [])
    return config


def pretrain_config(spec: TransferSpec, agent: str) -> Config:
    """Pre-training: intrinsic reward only, `behaviours x seeds` members."""
    reward = [
        f"reward.transform={spec.transform}",
        "reward.env_weight=0",
        f"reward.intrinsic_weight={spec.intrinsic_weight}",
        "reward.exploration_env_steps=0",
    ]
    behaviours = 2 if spec.random_ablation else 1
    return _config(
        spec,
        agent,
        [*spec.pretrain_overrides, *reward],
        behaviours * spec.seeds,
        spec.pretrain_env_steps,
    )


def finetune_sets(spec: TransferSpec, agent: str) -> list[str]:
    return [*spec.sets[agent], *([RANDOM_SET] if spec.random_ablation else [])]


def finetune_config(spec: TransferSpec, agent: str) -> Config:
    """Fine-tuning: the task reward only (the defaults), `sets x seeds` members."""
    members = len(finetune_sets(spec, agent)) * spec.seeds
    return _config(spec, agent, spec.finetune_overrides, members, spec.finetune_env_steps)


def finetune_members(spec: TransferSpec, agent: str, pretrain_dir: str, agent_obj) -> list:
    """`(run, member, parts)` per fine-tuning member (set-major), for `mixed_source`."""
    members = []
    for name in finetune_sets(spec, agent):
        for seed in range(spec.seeds):
            if name == RANDOM_SET:
                members.append((pretrain_dir, spec.seeds + seed, tuple(agent_obj.parts)))
            else:
                parts = spec.sets[agent][name]
                members.append((pretrain_dir if parts else None, seed, parts))
    return members


def _mean(row: np.ndarray) -> float:
    ok = np.isfinite(row)
    return float(row[ok].mean()) if ok.any() else float("nan")


def steps_to_target(returns: np.ndarray, env_steps: np.ndarray, target: float) -> float:
    """The env steps of the first evaluation whose return is at least `target` (NaN: none)."""
    reached = np.flatnonzero(np.isfinite(returns) & (returns >= target))
    return float(env_steps[reached[0]]) if reached.size else float("nan")


def _rows(result, agent: str, labels: list[str], spec, phase: str):
    """One row per member of a run (`jaxmb.run.RunResult`); the Crafter score is the run
    summary's (None off Craftax)."""
    returns = np.asarray(result.metrics["eval/episode_return"])
    env_steps = np.asarray(result.metrics["env_steps"]).reshape(returns.shape)
    crafter = result.summary.get("crafter_score") or [None] * len(labels)
    rows = []
    for m, label in enumerate(labels):
        row = {
            "phase": phase,
            "agent": agent,
            "set": label,
            "seed": m % spec.seeds,
            "final_return": plots.last_finite(returns[m]),
            "mean_return": _mean(returns[m]),
            "crafter_score": crafter[m],
        }
        if spec.target_return is not None:
            row["steps_to_target"] = steps_to_target(returns[m], env_steps[m], spec.target_return)
        rows.append(row)
    return rows


def run_transfer(
    spec: TransferSpec, *, name: str | None = None, root: str = "runs", quiet: bool = False
) -> dict[str, Any]:
    """Runs the experiment (see the module docstring); returns `summary.json`'s content."""
    from jaxmb import agents as agents_lib
    from jaxmb import transfer as transfer_lib
    from jaxmb.loop.build import build_env
    from jaxmb.run import train_run

    pre = {a: pretrain_config(spec, a) for a in spec.agents}  # every config checked first
    fine = {a: finetune_config(spec, a) for a in spec.agents}
    env_id = pre[spec.agents[0]].env.id
    out = planning.experiment_dir(root, name, "transfer", env_id, spec)
    start = time.perf_counter()
    seed = pre[spec.agents[0]].run.seed
    seed_keys = jax.random.split(jax.random.key(seed), spec.seeds)
    fine_keys = jax.random.split(jax.random.key(seed + 1), spec.seeds)
    behaviours = ["explore", "random"] if spec.random_ablation else ["explore"]
    pre_rows, rows, curves = [], [], {}
    for agent in spec.agents:
        config = pre[agent]
        hparams = None
        if spec.random_ablation:
            probs = [0.0] * spec.seeds + [1.0] * spec.seeds
            hparams = {"train.random_action_prob": np.asarray(probs, np.float32)}
        pre_dir = os.path.join(out, f"pretrain_{agent}")
        result = train_run(
            config,
            quiet=quiet,
            hparams=hparams,
            keys=jnp.concatenate([seed_keys] * len(behaviours)),
            run_dir=pre_dir,
        )
        labels = [b for b in behaviours for _ in range(spec.seeds)]
        pre_rows += _rows(result, agent, labels, spec, "pretrain")

        config = fine[agent]
        env, env_params = build_env(config)  # with the run's wrappers (discretize, ...)
        agent_obj = agents_lib.make(config, env, env_params)
        members = finetune_members(spec, agent, pre_dir, agent_obj)
        source = transfer_lib.mixed_source(members, agent_obj)
        sets = finetune_sets(spec, agent)
        result = train_run(
            config,
            quiet=quiet,
            keys=jnp.concatenate([fine_keys] * len(sets)),
            run_dir=os.path.join(out, f"finetune_{agent}"),
            source=source,
        )
        labels = [s for s in sets for _ in range(spec.seeds)]
        rows += _rows(result, agent, labels, spec, "finetune")
        curves[agent] = _curves(result.metrics, labels)
    planning.write_csv(os.path.join(out, "transfer.csv"), rows)
    planning.write_csv(os.path.join(out, "pretrain.csv"), pre_rows)
    title = f"{env_id}, {spec.seeds} seeds, {spec.transform} pre-training"
    plot_paths = {
        "curves": _plot_curves(out, curves, title),
        "final": _plot_bars(out, rows, "final_return", "final greedy return", "final", title),
    }
    if any(r["crafter_score"] is not None for r in rows):
        plot_paths["crafter"] = _plot_bars(
            out, rows, "crafter_score", "Crafter score (%)", "crafter", title, spec.anchors
        )
    columns = ("final_return", "mean_return", "crafter_score")
    if spec.target_return is not None:
        columns += ("steps_to_target",)
    summary = {
        "env_id": env_id,
        "seeds": spec.seeds,
        "transform": spec.transform,
        "finetune": _stats(rows, columns),
        "pretrain": _stats(pre_rows, columns),
        "anchors": spec.anchors,
        "plots": plot_paths,
        "seconds": round(time.perf_counter() - start, 1),
    }
    return planning.write_summary(out, summary)


def _stats(rows, columns) -> dict[str, Any]:
    groups = dict.fromkeys((r["agent"], r["set"]) for r in rows)
    return {
        f"{agent}/{name}": {
            column: plots.seed_stat(
                [r[column] for r in rows if (r["agent"], r["set"]) == (agent, name)]
            )
            for column in columns
        }
        for agent, name in groups
    }


def _curves(metrics: dict, labels: list[str]) -> dict[str, Any]:
    """Per set: env steps at the evaluations, and the members' greedy returns there."""
    returns = np.asarray(metrics["eval/episode_return"])
    steps = np.asarray(metrics["env_steps"]).reshape(returns.shape[0], -1)[0]
    evaluated = np.isfinite(returns).all(axis=0)
    out = {}
    for name in dict.fromkeys(labels):
        members = [m for m, label in enumerate(labels) if label == name]
        out[name] = (steps[evaluated], returns[members][:, evaluated])
    return out


def _plot_curves(out: str, curves: dict, title: str) -> str:
    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4), squeeze=False)
    for ax, (agent, sets) in zip(axes[0], curves.items(), strict=True):
        for name, (steps, returns) in sets.items():
            mean = returns.mean(axis=0)
            ax.plot(steps, mean, label=name, linestyle="--" if name == RANDOM_SET else "-")
            if returns.shape[0] > 1:
                bounds = [t_interval(list(col)) for col in returns.T]
                low = [b[0] if b else m for b, m in zip(bounds, mean, strict=True)]
                high = [b[1] if b else m for b, m in zip(bounds, mean, strict=True)]
                ax.fill_between(steps, low, high, alpha=0.15)
        ax.set_title(agent)
        ax.set_xlabel("fine-tuning env steps")
        ax.set_ylabel("greedy episode return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, os.path.join(out, "plots", "curves.png"), title)


def _plot_bars(out, rows, column, ylabel, stem, title, anchors=None) -> str:
    groups = list(dict.fromkeys((r["agent"], r["set"]) for r in rows))
    stats = _stats(rows, (column,))
    means, errors, labels = [], [], []
    for agent, name in groups:
        cell = stats[f"{agent}/{name}"][column]
        mean = np.nan if cell["mean"] is None else cell["mean"]
        low, high = cell["ci95"] or (mean, mean)
        means.append(mean)
        errors.append((max(mean - low, 0.0), max(high - mean, 0.0)))
        labels.append(f"{agent}\n{name}")
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(groups)), 4.5))
    colours = ["C0" if agent == "muzero" else "C1" for agent, _ in groups]
    ax.bar(range(len(groups)), means, yerr=np.asarray(errors).T, color=colours, capsize=3)
    for i, (label, value) in enumerate((anchors or {}).items()):
        ax.axhline(value, color=f"C{i + 2}", linestyle=":", linewidth=1)
        ax.text(len(groups) - 0.5, value, f" {label}: {value}", fontsize=7, va="bottom", ha="right")
    ax.set_xticks(range(len(groups)), labels, fontsize=7, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, os.path.join(out, "plots", f"{stem}.png"), title)
