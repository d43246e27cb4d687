"""The SSL generalisation experiment's pieces: one program per number of levels with each
member's own SSL term, the linear probe, and a tiny end-to-end run."""

import json
import os

import numpy as np
import pytest
from tiny_config import TINY

from jaxmb.config import ConfigError
from jaxmb.experiments import ssl_generalisation as study


def test_members_keep_their_own_term_and_share_seeds():
    spec = study.SSLGeneralisationSpec(ssl=("none", "spr", "contrastive"), seeds=2)
    hparams = study.member_hparams(spec)
    assert sorted(hparams) == ["agent.loss.weights.contrastive", "agent.loss.weights.spr"]
    np.testing.assert_array_equal(hparams["agent.loss.weights.spr"], [0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(hparams["agent.loss.weights.contrastive"], [0, 0, 0, 0, 1, 1])
    config = study.level_config(spec, 10)
    assert config.run.num_seeds == 6 and config.env.eval_unseen_levels
    assert (
        config.agent.loss.weights["spr"] == 1.0
        and "reconstruction" not in config.agent.loss.weights
    )
    unlimited = study.level_config(spec, 0)
    assert unlimited.env.params["num_levels"] == 0 and not unlimited.env.eval_unseen_levels
    assert study.member_hparams(study.SSLGeneralisationSpec(ssl=("none",))) is None
    with pytest.raises(ConfigError, match="ssl"):
        study.SSLGeneralisationSpec(ssl=("none", "byol"))


def test_the_probe_reads_a_linear_feature_and_not_noise():
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(8, 50, 16))
    features = latents[..., :3] @ rng.normal(size=(3, 2)) + 0.5
    assert study.probe_r2(latents, features) > 0.99
    noise = rng.normal(size=(8, 50, 2))
    assert study.probe_r2(latents, noise) < 0.1


def test_a_tiny_study_writes_its_table_plots_and_summary(tmp_path):
    spec = study.SSLGeneralisationSpec(
        base="muzero/minipacman",
        overrides=(
            *TINY,
            "env.eval_max_steps=20",
            "agent.network.torso=mlp",
            "agent.ssl.head_hidden_sizes=[16]",
            "agent.ssl.decoder_hidden_sizes=[16]",
            "agent.ssl.decoder=mlp",
            "agent.ssl.projection_dim=8",
            "run.progress=false",
            "run.tensorboard=false",
        ),
        levels=(3,),
        ssl=("none", "reconstruction", "spr"),
        seeds=1,
        probe_envs=4,
        probe_steps=8,
    )
    summary = study.run_ssl_generalisation(spec, name="tiny", root=str(tmp_path), quiet=True)
    out = summary["dir"]
    with open(os.path.join(out, "generalisation.csv")) as f:
        lines = f.read().splitlines()
    assert lines[0] == (
        "levels,ssl,seed,train_return,test_return,probe_r2,"
        "probe_r2_pacman,probe_r2_ghosts,probe_r2_food"
    )
    assert [line.split(",")[1] for line in lines[1:]] == ["none", "reconstruction", "spr"]
    for line in lines[1:]:
        assert all(np.isfinite(float(v)) for v in line.split(",")[3:])
    for name in ("returns", "levels", "probe", "reconstruction"):
        assert os.path.getsize(summary["plots"][name]) > 5_000, name
    with open(os.path.join(out, "summary.json")) as f:
        saved = json.load(f)
    assert set(saved["results"]) == {"3/none", "3/reconstruction", "3/spr"}
    with open(os.path.join(out, "levels_3", "metrics.jsonl")) as f:
        assert "eval/unseen_episode_return" in f.readline()
