"""Every preset in configs/ loads, names a registered env, and (for the envs that trace in
seconds) builds its whole program."""

import glob
import os

import jax
import pytest

import jaxmb.envs
from jaxmb import config as config_lib
from jaxmb import presets
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


# ----------------------------------------------------------------------------- by name

ALL_FILES = sorted(glob.glob(os.path.join(ROOT, "configs", "*", "*.yaml")))
CONFIG_NAMES = [n for n in presets.names() if not n.startswith("experiments/")]


def test_names_are_the_files_of_configs():
    from_files = {
        f"{os.path.basename(os.path.dirname(p))}/{os.path.basename(p)[:-5]}" for p in ALL_FILES
    }
    assert set(presets.names()) == from_files
    assert {"muzero/cartpole", "q_learning/cartpole", "experiments/planning"} <= from_files
    assert presets.names("q_learning") == ["q_learning/cartpole"]
    assert presets.root().samefile(os.path.join(ROOT, "configs"))  # editable: the repo's


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_preset_by_name_is_the_file(name):
    path = os.path.join(ROOT, "configs", f"{name}.yaml")
    assert config_lib.load(name) == config_lib.load(path)
    assert presets.path(name).samefile(path)


def test_a_repository_path_reads_as_its_name_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here, as for a wheel's user
    by_path = config_lib.load("configs/muzero/acrobot.yaml", ["train.total_env_steps=64"])
    assert by_path == config_lib.load("muzero/acrobot", ["train.total_env_steps=64"])
    assert by_path.env.id == "gymnax:Acrobot-v1"


def test_an_existing_file_wins_over_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    own = tmp_path / "configs" / "muzero" / "cartpole.yaml"
    own.parent.mkdir(parents=True)
    own.write_text("train: {total_env_steps: 1234}\n")
    assert config_lib.load("configs/muzero/cartpole.yaml").train.total_env_steps == 1234
    assert config_lib.load("muzero/cartpole").train.total_env_steps != 1234


@pytest.mark.parametrize(
    "given, close",
    [
        ("muzero/cartpol", ["muzero/cartpole", "q_learning/cartpole"]),
        ("cartpole", ["muzero/cartpole", "q_learning/cartpole"]),
        ("configs/muzero/minipacmann.yaml", ["muzero/minipacman"]),
        ("muzeros/sokobna", ["muzero/sokoban"]),
    ],
)
def test_an_unknown_name_lists_the_close_ones(given, close):
    with pytest.raises(config_lib.ConfigError) as err:
        config_lib.load(given)
    message = str(err.value)
    assert "did you mean " + ", ".join(map(repr, close)) + "?" in message
    assert repr(given) in message


def test_a_name_near_nothing_points_to_the_listing():
    with pytest.raises(config_lib.ConfigError, match="python -m jaxmb presets"):
        config_lib.load("zzzz")
    with pytest.raises(config_lib.ConfigError, match="^no preset named 'muzero/nope'; `python"):
        presets.path("muzero/nope")
    with pytest.raises(config_lib.ConfigError, match="did you mean"):
        presets.path("../configs/muzero/cartpole")  # names only: never a path around the folder


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_has_a_one_line_description(name):
    text = presets.description(name)
    assert 10 <= len(text) <= 120, text
    assert text.count("(") == text.count(")"), text
    assert not text.endswith((":", ".", ",")), text


@pytest.mark.parametrize(
    "line, head",
    [
        ("MuZero on X: the default (these too).", "MuZero on X: the default (these too)"),
        ("The planning experiment on Y at CPU scale:", "The planning experiment on Y at CPU scale"),
        (
            "MuZero on jaxmb:Sokoban-v0: generated rooms with 4 boxes, a",
            "MuZero on jaxmb:Sokoban-v0",
        ),
        (
            "MuZero on gymnax Acrobot-v1 (reward -1 a step; a 500-step",
            "MuZero on gymnax Acrobot-v1",
        ),
        ("MuZero on Z (symbolic): a 1,345-float observation (the", "MuZero on Z (symbolic)"),
        ("A line that runs on without a break", "A line that runs on without a break"),
    ],
)
def test_description_is_the_head_of_the_first_comment_line(line, head):
    assert presets._head(line) == head


def test_experiment_specs_load_by_name():
    from jaxmb.experiments import planning

    by_path = planning.load_spec(os.path.join(ROOT, "configs", "experiments", "planning.yaml"))
    assert planning.load_spec("planning") == by_path
    assert planning.load_spec("experiments/planning") == by_path
    assert planning.load_spec("planning", seeds=2).seeds == 2
    with pytest.raises(config_lib.ConfigError, match="'experiments/planning_cartpole_cpu'"):
        planning.load_spec("planning_cartpol_cpu")
    # A `base` given as a name works as one given as a path.
    named = planning.PlanningSpec(base="muzero/acrobot", overrides=("train.total_env_steps=64",))
    assert planning.variant_config(named, "one_step").env.id == "gymnax:Acrobot-v1"
