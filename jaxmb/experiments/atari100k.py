"""Atari 100k scoring: human-normalised scores and jaxmb's scores beside published agents'.

The protocol (100k agent steps, 400k frames) is the sample-efficient Atari benchmark of Kaiser
et al. (2020). A game's human-normalised score is

    (score - random) / (human - random)

with the published random and human scores below: 0 is a uniformly random policy, 1 a human
tester. `PUBLISHED` holds per-game scores at 100k steps of published agents. All figures are
from a secondary source, the DIAMOND paper's table (Alonso et al. 2024) as transcribed in
jaxmb's issue 26; `PROVENANCE` says so wherever they are drawn or written.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence

import numpy as np

from jaxmb.config import ConfigError

PROVENANCE = "DIAMOND paper's table (Alonso et al. 2024), as transcribed in jaxmb issue 26"

RANDOM = {"MsPacman": 307.3, "Hero": 1027.0}
"""A uniformly random policy's score per game."""
HUMAN = {"MsPacman": 6951.6, "Hero": 30826.4}
"""The human testers' score per game."""
PUBLISHED = {
    "EfficientZero": {"MsPacman": 1281.2, "Hero": 9315.9},
    "MuZero at 100k": {"MsPacman": 1265.6, "Hero": 3095.0},
    "BBF": {"MsPacman": 2008.3, "Hero": 7818.6},
}
"""Published agents' scores at 100k agent steps, per game."""


def game_of(env_id: str) -> str:
    """The game of an `ale:` id (`ale:MsPacman-v5` -> `MsPacman`), checked against the
    games with published scores."""
    name = env_id.split(":", 1)[-1].split("-", 1)[0]
    if name not in RANDOM:
        close = difflib.get_close_matches(name, list(RANDOM), n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise ConfigError(
            f"no published random and human scores for '{name}' (from {env_id!r}); "
            f"games: {sorted(RANDOM)}{hint}",
            "env.id",
        )
    return name


def human_normalised(score, game: str):
    """`(score - random) / (human - random)` for `game` (a name of `RANDOM`, or an `ale:` id);
    `score` may be a number or an array."""
    game = game_of(game)
    return (np.asarray(score, np.float64) - RANDOM[game]) / (HUMAN[game] - RANDOM[game])


def plot_scores(
    ours: Mapping[str, Sequence[float]], path: str, *, label: str = "jaxmb", title: str = ""
) -> str:
    """Bars of human-normalised score per game: `ours` ({game: per-seed scores}, mean with the
    seeds as dots) beside `PUBLISHED`, random at 0 and human at 1. Writes the PNG `path`."""
    from jaxmb import plotting

    plt = plotting.plt
    games = [game_of(g) for g in ours]
    agents = [*PUBLISHED, label]
    width = 0.8 / len(agents)
    fig, ax = plt.subplots(figsize=(2.2 + 2.4 * len(games), 4))
    x = np.arange(len(games))
    for i, agent in enumerate(agents):
        pos = x - 0.4 + width * (i + 0.5)
        if agent == label:
            seeds = [human_normalised(list(ours[g]), g) for g in ours]
            ax.bar(pos, [s.mean() for s in seeds], width, label=f"{label} (ours)", color="black")
            for p, s in zip(pos, seeds, strict=True):
                ax.scatter(np.full(s.shape, p), s, color="tab:orange", zorder=3, s=12)
        else:
            values = [human_normalised(PUBLISHED[agent][g], g) for g in games]
            ax.bar(pos, values, width, label=agent, alpha=0.8)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--", label="human")
    ax.set_xticks(x, games)
    ax.set_ylabel("human-normalised score")
    ax.legend(fontsize=7)
    ax.text(
        0.0, -0.18, f"published: {PROVENANCE}", transform=ax.transAxes, fontsize=6, color="grey"
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return plotting._save(fig, path, title)
