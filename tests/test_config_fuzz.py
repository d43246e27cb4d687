"""Config fuzzing: any set of overrides either builds a program or raises `ConfigError` naming
a key; nothing else (no raw traceback from deep inside JAX) reaches the user.

"Builds" means `jax.eval_shape(make_train(config), key)`: the whole program is traced (every
shape and dtype decided) without compiling or running it, which is where a config that slipped
past the checks would fail.

Large sizes (1e6 to 1e9 for every key that sizes an array) are drawn too: each must build or
end in a `ConfigError` naming a key (the memory check, `jaxmb.memory`), never a MemoryError or
an out-of-memory kill. They run in a subprocess under an address-space limit
(`tests/memory_limited.py`), so that a regression fails the test instead of taking the machine
down.
"""

import random

import jax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from memory_limited import run_limited
from tiny_config import TINY

from jaxmb import config as config_lib
from jaxmb import configlib
from jaxmb.config import Config, ConfigError
from jaxmb.train import make_train

KEYS = [k for k in configlib.flat_keys(Config) if not k.startswith("run.")]
VALUES = [
    "0",
    "1",
    "-1",
    "2",
    "3",
    "7",
    "0.5",
    "1e-3",
    "1e6",
    "abc",
    "true",
    "null",
    "[]",
    "[8, 8]",
    "{a: 1}",
    "nan",
    "inf",
    "muzero",
    "gumbel",
    "gymnax:Acrobot-v1",
    "gymnax:Pendulum-v1",
]


def _typo(key: str, data) -> str:
    """A key one edit away from a valid one, or one moved to another section."""
    parts = key.split(".")
    kind = data.draw(st.sampled_from(["drop", "swap", "section"]))
    last = parts[-1]
    if kind == "drop" and len(last) > 3:
        i = data.draw(st.integers(0, len(last) - 1))
        parts[-1] = last[:i] + last[i + 1 :]
    elif kind == "swap" and len(last) > 3:
        i = data.draw(st.integers(0, len(last) - 2))
        parts[-1] = last[:i] + last[i + 1] + last[i] + last[i + 2 :]
    else:
        parts = [parts[0], last]
    return ".".join(parts)


def _default(key: str):
    node = Config()
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _plausible(key: str):
    """Values of the key's own type, valid or not (0, 1 and small numbers, bounds)."""
    default = _default(key)
    spec_choices = {
        "agent.network.torso": ["auto", "mlp", "resnet", "conv"],
        "agent.network.activation": ["relu", "gelu", "tanh"],
        "agent.network.latent_norm": ["minmax", "layernorm", "none"],
        "agent.search.algorithm": ["muzero", "gumbel"],
        "agent.loss.bootstrap": ["target_network", "stored"],
        "env.discretize.mode": ["none", "grid", "codebook"],
    }
    if key in spec_choices:
        return st.sampled_from(spec_choices[key])
    if isinstance(default, bool):
        return st.sampled_from(["true", "false"])
    if isinstance(default, int) or default is None:
        return st.integers(0, 9).map(str)
    if isinstance(default, float):
        return st.sampled_from(["0.0", "0.1", "0.5", "0.9", "1.0", "1.5", "100.0"])
    if isinstance(default, tuple):
        return st.sampled_from(["[]", "[4]", "[8, 8]", "[0]"])
    if isinstance(default, dict):
        return st.sampled_from(["{}", "{max_steps_in_episode: 20}", "{policy: 1.0}", "{x: 1}"])
    return st.sampled_from(["gymnax:Acrobot-v1", "gymnax:Pendulum-v1", "gymnax:CartPol-v1"])


@st.composite
def override_sets(draw):
    count = draw(st.integers(1, 3))
    overrides = []
    for _ in range(count):
        key = draw(st.sampled_from(KEYS))
        kind = draw(st.integers(0, 5))
        if kind == 0:  # a mistyped key
            key = _typo(key, draw(st.data()))
            value = draw(st.sampled_from(VALUES))
        elif kind == 1:  # any value, mostly of the wrong type
            value = draw(st.sampled_from(VALUES))
        else:  # a value of the right type, in range or not
            value = draw(_plausible(key))
        overrides.append(f"{key}={value}")
    return overrides


def _named_key(err: ConfigError) -> bool:
    return bool(err.key) and ("." in err.key or err.key in {f.split(".")[0] for f in KEYS})


def _builds_or_names_the_key(overrides):
    try:
        config = config_lib.load(None, TINY + overrides)
    except ConfigError as err:
        assert _named_key(err), f"{overrides}: {err!r} names no key"
        return
    try:
        jax.eval_shape(make_train(config), jax.random.key(0))
    except ConfigError as err:
        assert _named_key(err), f"{overrides}: {err!r} names no key"


# Tracing the whole program takes about 10 s a config on a CI core: the default run checks a
# handful of fixed examples, the `heavy` run (`make test-all`) many more.
_FIXED = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow], "derandomize": True}


@settings(max_examples=8, **_FIXED)  # derandomized: the same examples on every run
@given(override_sets())
def test_random_overrides_build_or_name_the_key(overrides):
    _builds_or_names_the_key(overrides)


@pytest.mark.heavy
@settings(max_examples=60, **_FIXED)
@given(override_sets())
def test_many_random_overrides_build_or_name_the_key(overrides):
    _builds_or_names_the_key(overrides)


#: Keys whose value sizes an array, or a table built while tracing (mctx's Gumbel visit table).
SIZE_KEYS = [
    "env.num_envs",
    "env.num_eval_envs",
    "env.discretize.values_per_dim",
    "agent.network.hidden_sizes",
    "agent.network.latent_dim",
    "agent.network.dynamics_hidden_sizes",
    "agent.network.head_hidden_sizes",
    "agent.network.conv_channels",
    "agent.network.num_res_blocks",
    "agent.network.value_support.num_atoms",
    "agent.network.reward_support.num_atoms",
    "agent.search.num_simulations",
    "agent.search.num_simulations_test",
    "agent.search.max_num_considered_actions",
    "agent.search.rollout_horizon",
    "agent.loss.unroll_steps",
    "agent.loss.td_steps",
    "replay.capacity",
    "replay.batch_size",
    "reward.count.hash_bits",
    "train.total_env_steps",
    "train.rollout_steps",
]
LARGE = [10**6, 10**7, 10**8, 10**9]


def _large(key: str, value: int) -> str:
    return f"{key}=[{value}]" if isinstance(_default(key), tuple) else f"{key}={value}"


def _check_large(cases: list[list[str]]) -> None:
    results = run_limited([{"overrides": overrides} for overrides in cases], timeout=1800)
    for result in results:
        ok = result["outcome"] == "built" or (
            result["outcome"] == "config_error" and _named_key(ConfigError("", result["key"]))
        )
        assert ok, result


def test_size_keys_are_config_keys():
    assert set(SIZE_KEYS) <= set(KEYS)


def test_large_sizes_build_or_name_the_key_under_a_memory_limit():
    # Every size key once, at a size drawn from 1e6..1e9 (derandomized: the same on every run),
    # the largest for the search keys (1e6 simulations build, in about 25 s: mctx builds its
    # sequential-halving table in Python).
    rng = random.Random(0)
    cases = [[_large(key, 10**9 if "search" in key else rng.choice(LARGE))] for key in SIZE_KEYS]
    _check_large(cases)


@pytest.mark.heavy
def test_every_large_size_builds_or_names_the_key_under_a_memory_limit():
    rng = random.Random(1)
    cases = [[_large(key, value)] for key in SIZE_KEYS for value in LARGE]
    # And pairs: two sizes at once.
    for _ in range(20):
        a, b = rng.sample(SIZE_KEYS, 2)
        cases.append([_large(a, rng.choice(LARGE)), _large(b, rng.choice(LARGE))])
    _check_large(cases)
