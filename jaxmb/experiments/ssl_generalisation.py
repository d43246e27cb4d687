"""Self-supervision and procedural generalisation (Anand et al. 2022): MuZero with and without
a self-supervised loss on its model, trained on N levels and tested on unseen ones.

    python -m jaxmb experiment generalisation --env jaxmb:MiniPacman-v0 \\
        --levels 10,100,500,0 --ssl none,reconstruction,spr,contrastive --seeds 5

1. For each number of training levels N (`env.params.num_levels`, from level 0; 0 means every
   level, "unlimited"), one program trains every SSL kind times every seed: all the kinds'
   terms are in the program and each member's weights keep its own term only (the weights
   are traced hyperparameters), so the study costs one compile per N. Each N is a run
   directory under `levels_<N>/` that resumes.
2. Through training, the loop evaluates on the training levels (`eval/episode_return`) and on
   unseen ones (`env.eval_unseen_levels`: levels from N on), plotted together in each run's
   `plots/learning_curve.png`. With N = 0, training levels are the test distribution and the
   two returns are one.
3. A linear probe (`probe_r2`) reads ground-truth state features from the frozen latent on
   unseen levels: for MiniPacman, Pacman's and the ghosts' positions and the food left, from
   `probe_envs` episodes of uniformly random play (half fit it, half score it). Its R^2 on the
   held-out episodes, per feature group and averaged, measures how much of the state the
   representation keeps linearly.
4. Writes `generalisation.csv` (per N, kind and seed: the final return on training and on
   unseen levels, and the probe's R^2, averaged and per group), `summary.json` (means with
   95% t intervals over seeds) and plots: `plots/returns.png` (train and test return per
   kind, one panel per N), `plots/levels.png` (test return against N, one line per kind),
   `plots/probe.png` (the probe's R^2 for Pacman's position against N) and
   `plots/reconstruction.png` (observations against the decoder's picture of the model's
   latents at k = 0..K, for the first seed trained with reconstruction).

The loss forms are jaxmb's reading of the paper (`jaxmb.losses.ssl`), not its verified
settings.
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
from jaxmb.losses import ssl as ssl_lib
from jaxmb.plotting import _save, plt

KINDS = ("none", "reconstruction", "spr", "contrastive")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SSLGeneralisationSpec:
    """What `run_ssl_generalisation` trains and measures.

    Attributes:
      base: the preset (a name or a YAML path); its env must take `num_levels`.
      overrides: dotted overrides of `base`.
      levels: numbers of training levels (0: every level).
      ssl: the kinds compared (`none` and the SSL terms of `jaxmb.losses.ssl`).
      seeds: seeds per kind and number of levels.
      ssl_weight: the weight of a member's own SSL term.
      probe_envs, probe_steps: the probe's data: `probe_envs` unseen-level episodes of
        `probe_steps` uniformly random steps (half the episodes fit it, half test it).
    """

    base: str = "muzero/minipacman"
    overrides: tuple[str, ...] = ()
    levels: tuple[int, ...] = (10, 100, 500, 0)
    ssl: tuple[str, ...] = KINDS
    seeds: int = 3
    ssl_weight: float = 1.0
    probe_envs: int = 128
    probe_steps: int = 64

    def __post_init__(self) -> None:
        if not self.levels or any(n < 0 for n in self.levels):
            raise ConfigError(f"levels must be >= 0 (0: every level), got {self.levels}", "levels")
        unknown = [k for k in self.ssl if k not in KINDS]
        if unknown or not self.ssl:
            raise ConfigError(f"ssl kinds are {', '.join(KINDS)}; got {list(self.ssl)}", "ssl")
        if self.seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {self.seeds}", "seeds")


QUICK: dict[str, Any] = {
    "levels": (2, 0),
    "seeds": 2,
    "probe_envs": 4,
    "probe_steps": 16,
    "overrides": (
        "train.total_env_steps=2048",
        "train.eval_every=1024",
        "train.log_every=1024",
        "replay.capacity=2048",
        "replay.min_size=256",
        "replay.batch_size=16",
        "env.num_eval_envs=4",
        "env.eval_max_steps=50",
        "agent.search.num_simulations=2",
        "agent.loss.unroll_steps=3",
        "agent.loss.td_steps=3",
    ),
}


def _label(levels: int) -> str:
    return "unlimited" if levels == 0 else str(levels)


def level_config(spec: SSLGeneralisationSpec, levels: int) -> Config:
    """The config of one number of training levels: every kind x seed as a member."""
    terms = [k for k in spec.ssl if k != "none"]
    overrides = [
        *spec.overrides,
        f"env.params.num_levels={levels}",
        "env.params.start_level=0",
        f"env.eval_unseen_levels={'true' if levels else 'false'}",
        *(f"agent.loss.weights.{k}={spec.ssl_weight}" for k in terms),
        f"run.num_seeds={len(spec.ssl) * spec.seeds}",
    ]
    base = spec.base if os.path.exists(spec.base) else spec.base.removesuffix(".yaml")
    return config_lib.load(base, overrides)


def member_hparams(spec: SSLGeneralisationSpec) -> dict[str, np.ndarray] | None:
    """Each member's SSL weights: its own kind's term at `ssl_weight`, the others at 0
    (members are kind-major: kind i, seed s is member i * seeds + s)."""
    terms = [k for k in spec.ssl if k != "none"]
    kinds = [k for k in spec.ssl for _ in range(spec.seeds)]
    return {
        f"agent.loss.weights.{term}": np.asarray(
            [spec.ssl_weight if kind == term else 0.0 for kind in kinds], np.float32
        )
        for term in terms
    } or None


def probe_data(loop, unseen_params, spec: SSLGeneralisationSpec, key: jax.Array):
    """Unseen-level observations `[E, T, ...]`, actions `[E, T]` and state features
    `[E, T, F]` from uniformly random play (MiniPacman's: Pacman's and the ghosts' positions
    and the food left), or None for an env without those state fields."""
    from jaxmb.envs import VectorEnv

    env = VectorEnv(loop.env, spec.probe_envs)
    reset_key, key = jax.random.split(key)
    obs, state = env.reset(reset_key, unseen_params)
    if not all(hasattr(state, f) for f in ("pacman", "ghosts", "food")):
        return None
    num_actions = loop.agent.num_actions

    def step(carry, key):
        obs, state = carry
        act_key, env_key = jax.random.split(key)
        action = jax.random.randint(act_key, (spec.probe_envs,), 0, num_actions)
        features = jnp.concatenate(
            [
                state.pacman.astype(jnp.float32),
                state.ghosts.reshape(spec.probe_envs, -1).astype(jnp.float32),
                jnp.sum(state.food, axis=(1, 2))[:, None].astype(jnp.float32),
            ],
            axis=-1,
        )
        obs2, state2, *_ = env.step(env_key, state, action, unseen_params)
        return (obs2, state2), (obs, action, features)

    keys = jax.random.split(key, spec.probe_steps)
    _, (obs, actions, features) = jax.jit(lambda c, k: jax.lax.scan(step, c, k))((obs, state), keys)
    swap = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
    return swap(obs), swap(actions), swap(features)


PROBE_GROUPS = ("pacman", "ghosts", "food")


def probe_groups(num_features: int) -> dict[str, slice]:
    """MiniPacman's feature columns: Pacman's (row, column), the ghosts', the food left."""
    return {"pacman": slice(0, 2), "ghosts": slice(2, num_features - 1), "food": slice(-1, None)}


def probe_r2(latents: np.ndarray, features: np.ndarray, *, per_feature: bool = False):
    """A ridge-regularised linear probe fit on the first half of the episodes `[E, T, D]`,
    scored on the second: the R^2 averaged over the features that vary (`per_feature`: each
    feature's, NaN where it does not vary)."""
    half = latents.shape[0] // 2
    flat = lambda x: x.reshape(-1, x.shape[-1]).astype(np.float64)  # noqa: E731
    x_fit, x_test = flat(latents[:half]), flat(latents[half:])
    y_fit, y_test = flat(features[:half]), flat(features[half:])
    mean_x, mean_y = x_fit.mean(0), y_fit.mean(0)
    x_fit, x_test = x_fit - mean_x, x_test - mean_x
    gram = x_fit.T @ x_fit + 1e-2 * len(x_fit) * np.eye(x_fit.shape[1])
    weights = np.linalg.solve(gram, x_fit.T @ (y_fit - mean_y))
    predicted = x_test @ weights + mean_y
    variance = y_test.var(0)
    keep = variance > 1e-8
    r2 = np.full(variance.shape, np.nan)
    r2[keep] = 1.0 - ((y_test - predicted) ** 2).mean(0)[keep] / variance[keep]
    return r2 if per_feature else float(np.nanmean(r2))


def run_ssl_generalisation(
    spec: SSLGeneralisationSpec, *, name: str | None = None, root: str = "runs", quiet: bool = False
) -> dict[str, Any]:
    """Runs the experiment (see the module docstring); returns `summary.json`'s content."""
    from jaxmb.loop import Loop
    from jaxmb.loop.evaluation import unseen_levels
    from jaxmb.run import train_run

    configs = {n: level_config(spec, n) for n in spec.levels}  # every config checked first
    env_id = configs[spec.levels[0]].env.id
    out = planning.experiment_dir(root, name, "ssl-generalisation", env_id, spec)
    start = time.perf_counter()
    hparams = member_hparams(spec)
    seed_keys = jax.random.split(jax.random.key(configs[spec.levels[0]].run.seed), spec.seeds)
    keys = jnp.concatenate([seed_keys] * len(spec.ssl))  # common seeds across kinds
    kinds = [k for k in spec.ssl for _ in range(spec.seeds)]
    rows, pictures = [], None
    for levels, config in configs.items():
        run_dir = os.path.join(out, f"levels_{levels}")
        os.makedirs(os.path.join(run_dir, "plots"), exist_ok=True)
        result = train_run(config, quiet=quiet, hparams=hparams, keys=keys, run_dir=run_dir)
        metrics = result.metrics
        seen = metrics["eval/episode_return"]
        unseen = metrics.get("eval/unseen_episode_return", seen)
        loop = Loop(config)
        probe_params = unseen_levels(loop.env_params) if levels else loop.env_params
        data = probe_data(loop, probe_params, spec, jax.random.key(config.run.seed + 7919))
        agent_params = result.final_state.agent.params
        r2 = [{g: float("nan") for g in ("all", *PROBE_GROUPS)} for _ in kinds]
        if data is not None:
            obs, actions, features = data
            latents = jax.jit(jax.vmap(loop.agent.represent, in_axes=(0, None)))(agent_params, obs)
            groups = probe_groups(features.shape[-1])
            for m, z in enumerate(latents):
                each = probe_r2(np.asarray(z), np.asarray(features), per_feature=True)
                r2[m] = {"all": float(np.nanmean(each))}
                r2[m].update({g: float(np.nanmean(each[cols])) for g, cols in groups.items()})
            if pictures is None and "reconstruction" in spec.ssl:
                member = kinds.index("reconstruction")
                params = jax.tree.map(lambda x, m=member: x[m], agent_params)
                pictures = _reconstructions(loop.agent, params, obs[0], actions[0], levels)
        for m, kind in enumerate(kinds):
            rows.append(
                {
                    "levels": _label(levels),
                    "ssl": kind,
                    "seed": m % spec.seeds,
                    "train_return": plots.last_finite(seen[m]),
                    "test_return": plots.last_finite(unseen[m]),
                    "probe_r2": r2[m]["all"],
                    **{f"probe_r2_{g}": r2[m][g] for g in PROBE_GROUPS},
                }
            )
    planning.write_csv(os.path.join(out, "generalisation.csv"), rows)
    title = f"{env_id}, {spec.seeds} seeds"
    plot_paths = {
        "returns": _plot_returns(out, rows, spec, title),
        "levels": _plot_by_levels(out, rows, spec, "test_return", "levels", title),
        "probe": _plot_by_levels(out, rows, spec, "probe_r2_pacman", "probe", title),
    }
    if pictures is not None:
        plot_paths["reconstruction"] = _plot_reconstruction(out, *pictures)
    summary = {
        "env_id": env_id,
        "levels": list(spec.levels),
        "seeds": spec.seeds,
        "results": {
            f"{levels}/{kind}": {
                column: plots.seed_stat(
                    [r[column] for r in rows if (r["levels"], r["ssl"]) == (levels, kind)]
                )
                for column in (
                    "train_return",
                    "test_return",
                    "probe_r2",
                    *(f"probe_r2_{g}" for g in PROBE_GROUPS),
                )
            }
            for levels in dict.fromkeys(r["levels"] for r in rows)
            for kind in spec.ssl
        },
        "plots": plot_paths,
        "seconds": round(time.perf_counter() - start, 1),
    }
    return planning.write_summary(out, summary)


def _reconstructions(agent, params, obs, actions, levels: int):
    """Observations `o_0..o_K` of one probe episode and the decoder's picture of the model's
    latents `z_0..z_K` unrolled from `o_0` with the episode's actions."""
    steps = agent.config.loss.unroll_steps
    unroll = agent.unroll(params, obs[None, 0], actions[None, :steps])
    decoded = ssl_lib.decode(agent.term_context, params, unroll["latents"])[0]
    return np.asarray(obs[: steps + 1]), np.asarray(decoded), levels


def _image(x: np.ndarray) -> np.ndarray:
    """An `[H, W, C]` observation as RGB: as it is for C = 3, else each channel in its own
    colour (for vectors: a single row)."""
    if x.ndim == 1:
        return np.clip(x[None, :], 0, 1)
    if x.shape[-1] == 3:
        return np.clip(x, 0, 1)
    colours = plt.get_cmap("tab10")(np.arange(x.shape[-1]) % 10)[:, :3]
    return np.clip(np.clip(x, 0, 1) @ colours, 0, 1)


def _plot_reconstruction(out: str, obs: np.ndarray, decoded: np.ndarray, levels: int) -> str:
    steps = obs.shape[0]
    fig, axes = plt.subplots(2, steps, figsize=(2.2 * steps, 4.4), squeeze=False)
    for k in range(steps):
        for row, (picture, label) in enumerate(((obs[k], "observation"), (decoded[k], "decoded"))):
            ax = axes[row, k]
            ax.imshow(_image(picture), interpolation="nearest", aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_ylabel(label)
        axes[0, k].set_title(f"k = {k}")
    title = (
        f"reconstruction of the model's latents (trained on {_label(levels)} levels, unseen level)"
    )
    return _save(fig, os.path.join(out, "plots", "reconstruction.png"), title)


def _plot_returns(out: str, rows, spec: SSLGeneralisationSpec, title: str) -> str:
    groups = list(dict.fromkeys(r["levels"] for r in rows))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 4), squeeze=False)
    width = 0.38
    for ax, levels in zip(axes[0], groups, strict=True):
        for offset, column, label in (
            (-width / 2, "train_return", "training levels"),
            (width / 2, "test_return", "unseen levels"),
        ):
            stats = [
                plots.seed_stat(
                    [r[column] for r in rows if r["levels"] == levels and r["ssl"] == kind]
                )
                for kind in spec.ssl
            ]
            means = [s["mean"] if s["mean"] is not None else np.nan for s in stats]
            ax.bar(
                np.arange(len(spec.ssl)) + offset,
                means,
                width,
                yerr=plots._errorbars(
                    [s if s["mean"] is not None else {"mean": 0.0, "ci95": None} for s in stats]
                ),
                capsize=3,
                label=label,
                alpha=0.8,
            )
        ax.set_xticks(np.arange(len(spec.ssl)), spec.ssl, rotation=20)
        ax.set_title(f"trained on {levels} levels")
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].set_ylabel("final greedy return")
    axes[0, 0].legend(fontsize=8)
    return _save(fig, os.path.join(out, "plots", "returns.png"), title)


def _plot_by_levels(
    out: str, rows, spec: SSLGeneralisationSpec, column: str, name: str, title: str
) -> str:
    groups = list(dict.fromkeys(r["levels"] for r in rows))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    x = np.arange(len(groups))
    for kind in spec.ssl:
        stats = [
            plots.seed_stat([r[column] for r in rows if r["levels"] == g and r["ssl"] == kind])
            for g in groups
        ]
        means = np.array([np.nan if s["mean"] is None else s["mean"] for s in stats])
        line = ax.plot(x, means, marker="o", label=kind)[0]
        low = np.array(
            [m if s["ci95"] is None else s["ci95"][0] for m, s in zip(means, stats, strict=True)]
        )
        high = np.array(
            [m if s["ci95"] is None else s["ci95"][1] for m, s in zip(means, stats, strict=True)]
        )
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15)
    ax.set_xticks(x, groups)
    ax.set_xlabel("training levels")
    ax.set_ylabel(
        "final greedy return on unseen levels"
        if column == "test_return"
        else "probe R^2 of Pacman's position on unseen levels"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, os.path.join(out, "plots", f"{name}.png"), title)
