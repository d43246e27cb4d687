"""`make`, `list_envs` and `register`: ids, overrides, suggestions, optional sources."""

import gymnasium
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from random_walk_env import RandomWalkEnv

import jaxmb.envs
from jaxmb.envs import MissingDependencyError, UnknownEnvError, core, registry
from jaxmb.envs.gymnax_adapter import GYMNAX_ENV_IDS, GymnaxEnv

GYMNAX_IDS = sorted(f"gymnax:{name}" for name in GYMNAX_ENV_IDS)


@pytest.fixture
def scratch_registry(monkeypatch):
    """Lets a test register ids without leaking them into other tests."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_make_returns_the_env_and_its_params():
    env, params = jaxmb.envs.make("gymnax:CartPole-v1")
    assert isinstance(env, GymnaxEnv) and core.missing_env_members(env) == []
    assert env.id == "gymnax:CartPole-v1"
    assert params == env.default_params()
    assert params.max_steps_in_episode == 500


def test_overrides_replace_params_fields():
    env, params = jaxmb.envs.make("gymnax:CartPole-v1", max_steps_in_episode=200, gravity=3.0)
    assert (params.max_steps_in_episode, params.gravity) == (200, 3.0)
    assert params.masscart == 1.0
    assert env.default_params() == params


def test_unknown_override_names_the_key_and_the_valid_ones():
    with pytest.raises(ValueError) as error:
        jaxmb.envs.make("gymnax:CartPole-v1", max_step_in_episode=200)
    message = str(error.value)
    assert "'max_step_in_episode'" in message
    assert "did you mean 'max_steps_in_episode'?" in message
    assert "gravity" in message and "x_threshold" in message


@pytest.mark.parametrize(
    ("bad_id", "suggested"),
    [
        ("gymnax:CartPol-v1", "gymnax:CartPole-v1"),
        ("CartPole-v1", "gymnax:CartPole-v1"),
        ("gymnax:cartpole-v1", "gymnax:CartPole-v1"),
        ("gymnx:Acrobot-v1", "gymnax:Acrobot-v1"),
        ("gymnax:Breakout", "gymnax:Breakout-MinAtar"),
    ],
)
def test_bad_id_suggests_the_closest_ids(bad_id, suggested):
    with pytest.raises(UnknownEnvError) as error:
        jaxmb.envs.make(bad_id)
    assert f"did you mean {suggested}?" in str(error.value)
    assert isinstance(error.value, ValueError) and isinstance(error.value, KeyError)


def test_bad_id_without_a_close_match_lists_the_sources():
    with pytest.raises(
        UnknownEnvError, match="source one of brax, craftax, gymnax, jaxmb, jumanji, pgx"
    ):
        jaxmb.envs.make("nothing-like-it")


@given(env_id=st.sampled_from(GYMNAX_IDS), data=st.data())
def test_a_one_character_typo_suggests_the_intended_id(env_id, data):
    name = env_id.split(":", 1)[1]
    i = data.draw(st.integers(0, len(name) - 1))
    typo = name[:i] + name[i + 1 :]
    if f"gymnax:{typo}" in GYMNAX_IDS:
        return
    with pytest.raises(UnknownEnvError) as error:
        registry.spec(f"gymnax:{typo}")
    assert env_id in str(error.value)


def test_list_envs_describes_every_gymnax_env():
    # One source: listing all of them builds every installed env (MJX ones take ~10 s each).
    rows = jaxmb.envs.list_envs(source="gymnax")
    by_id = {row.id: row for row in rows}
    assert set(GYMNAX_IDS) <= set(by_id)
    row = by_id["gymnax:CartPole-v1"]
    assert row.source == "gymnax" and row.extra is None
    assert row.observation_space.shape == (4,)
    assert row.action_space == gymnasium.spaces.Discrete(2, dtype=np.int32)
    assert [row.id for row in jaxmb.envs.list_envs(source="gymnax")] == GYMNAX_IDS


def test_list_alias_does_not_shadow_the_builtin():
    from jaxmb.envs import list as list_alias

    assert list_alias is jaxmb.envs.list is jaxmb.envs.list_envs
    assert "list" not in jaxmb.envs.__all__ and "list" in dir(jaxmb.envs)
    assert "list" not in vars(jaxmb.envs)
    with pytest.raises(AttributeError):
        jaxmb.envs.no_such_name  # noqa: B018


def _build_walk(params):
    return RandomWalkEnv()


@pytest.mark.usefixtures("scratch_registry")
def test_missing_optional_package_names_the_pip_install():
    jaxmb.envs.register(
        "fakesrc:Thing-v0",
        _build_walk,
        extra="fakesrc",
        requires=("numpy", "jaxmb_test_package_that_does_not_exist.submodule"),
    )
    with pytest.raises(MissingDependencyError) as error:
        jaxmb.envs.make("fakesrc:Thing-v0")
    assert 'pip install "jaxmb[fakesrc]"' in str(error.value)
    assert "jaxmb_test_package_that_does_not_exist.submodule" in str(error.value)
    assert "numpy" not in str(error.value)
    assert isinstance(error.value, ImportError)
    (row,) = jaxmb.envs.list_envs(source="fakesrc")
    assert row == ("fakesrc:Thing-v0", "fakesrc", None, None, "fakesrc")


@pytest.mark.usefixtures("scratch_registry")
def test_a_registered_source_with_mapping_params():
    class DictParamsEnv(RandomWalkEnv):
        def __init__(self, params):
            self._params = params or {"max_steps": 6, "goal": 3}

        def default_params(self):
            return self._params

    jaxmb.envs.register("fakesrc:Dict-v0", DictParamsEnv, extra="fakesrc", requires=("numpy",))
    env, params = jaxmb.envs.make("fakesrc:Dict-v0", goal=5)
    assert params == {"max_steps": 6, "goal": 5} == env.default_params()
    with pytest.raises(ValueError, match="'gaol'.*did you mean 'goal'"):
        jaxmb.envs.make("fakesrc:Dict-v0", gaol=5)
    with pytest.raises(UnknownEnvError, match="did you mean fakesrc:Dict-v0"):
        jaxmb.envs.make("Dict-v0")


def test_continuous_envs_have_every_member_but_no_action_count():
    env, _ = jaxmb.envs.make("gymnax:Pendulum-v1")
    assert core.missing_env_members(env) == []
    with pytest.raises(TypeError, match="Discrete"):
        env.num_actions  # noqa: B018


@pytest.mark.usefixtures("scratch_registry")
def test_make_rejects_a_builder_that_returns_no_env():
    jaxmb.envs.register("fakesrc:Broken-v0", lambda params: object())
    with pytest.raises(TypeError, match="lacks"):
        jaxmb.envs.make("fakesrc:Broken-v0")


@pytest.mark.usefixtures("scratch_registry")
def test_register_rejects_malformed_and_duplicate_ids():
    with pytest.raises(ValueError, match="<source>:<name>"):
        jaxmb.envs.register("NoSource-v0", _build_walk)
    with pytest.raises(ValueError, match="already registered"):
        jaxmb.envs.register("gymnax:CartPole-v1", _build_walk)


def test_num_actions_helper():
    assert jaxmb.envs.num_actions(gymnasium.spaces.Discrete(4)) == 4
    with pytest.raises(TypeError, match="Discrete"):
        jaxmb.envs.num_actions(gymnasium.spaces.Box(-1, 1, (2,)))
    with pytest.raises(ValueError, match="start"):
        core.num_actions(gymnasium.spaces.Discrete(3, start=1))
