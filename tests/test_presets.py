"""Every preset in configs/ loads, names a registered env, and (for the envs that trace in
seconds) builds its whole program."""

import glob
import os

import jax
import pytest

import jaxmb.envs
from jaxmb import config as config_lib
from jaxmb.envs import registry
from jaxmb.train import make_train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = sorted(glob.glob(os.path.join(ROOT, "configs", "muzero", "*.yaml")))
# MJX and Craftax programs take 30 s to minutes to trace on the CPU; their adapters have
# their own tests. The gymnax presets' programs are built by the other tests.
SLOW_SOURCES = ("playground", "brax", "craftax", "gymnax")


def test_every_env_has_a_preset():
    ids = {config_lib.load(path).env.id for path in PRESETS}
    for wanted in (
        "gymnax:CartPole-v1",
        "jaxmb:Sokoban-v0",
        "jaxmb:MiniPacman-v0",
        "pgx:go_9x9",
        "craftax:Craftax-Classic-Symbolic-v1",
        "playground:AcrobotSwingupSparse",
        "playground:CheetahRun",
        "playground:HumanoidStand",
    ):
        assert wanted in ids, wanted


@pytest.mark.parametrize("path", PRESETS, ids=[os.path.basename(p) for p in PRESETS])
def test_preset_loads_and_builds(path):
    config = config_lib.load(path)
    env_spec = registry.spec(config.env.id)
    if env_spec.source in SLOW_SOURCES or env_spec.missing_modules():
        return
    small = config_lib.load(path, ["train.total_env_steps=100000", "env.num_eval_envs=2"])
    _, metrics = jax.eval_shape(make_train(small), jax.random.key(0))
    assert metrics["loss"].shape == (small.num_iterations,)
    env, _ = jaxmb.envs.make(config.env.id, **config.env.params)
    assert env.id == config.env.id
