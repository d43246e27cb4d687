"""Learning test of the transfer study: MuZero pre-trained with RND alone, then fine-tuned with
everything transferred, finds DeepSea's reward in fewer task steps than MuZero from scratch.

DeepSea (bsuite, size 8) pays 1 at the bottom-right corner, which uniformly random play reaches
once in 256 episodes. The preset `configs/experiments/transfer_deepsea_cpu.yaml` pre-trains 3
seeds for 8,192 env steps on the RND reward alone and fine-tunes each from scratch and from
all of its parts for 8,192 task steps. A member's `steps_to_target` is the env steps of its
first greedy evaluation (every 256 steps) returning at least 0.9; a member that never gets
there counts as the budget plus one evaluation.
"""

import csv

import numpy as np
import pytest
import yaml

from jaxmb import presets
from jaxmb.experiments import transfer as study

MARGIN = 1024  # env steps: four evaluations earlier, on average over the seeds


def _steps(rows, name, budget):
    return [
        budget + 256 if np.isnan(r["steps_to_target"]) else r["steps_to_target"]
        for r in rows
        if r["set"] == name
    ]


# `make test-all`: two MuZero programs of 3 and 6 members, several minutes on 2 cores.
@pytest.mark.heavy
def test_rnd_pretraining_finds_the_deepsea_reward_sooner_than_scratch(tmp_path):
    path = presets.resolve("transfer_deepsea_cpu", group="experiments")
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    spec = study.TransferSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    study.run_transfer(spec, name="deepsea", root=str(tmp_path), quiet=True)
    with open(tmp_path / "deepsea" / "transfer.csv") as f:
        rows = [{**r, "steps_to_target": float(r["steps_to_target"])} for r in csv.DictReader(f)]
    budget = spec.finetune_env_steps
    scratch, transferred = _steps(rows, "scratch", budget), _steps(rows, "all", budget)
    assert np.mean(transferred) + MARGIN <= np.mean(scratch), (scratch, transferred)
