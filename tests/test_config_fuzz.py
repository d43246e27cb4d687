"""Config fuzzing: any set of overrides either builds a program or raises `ConfigError` naming
a key; nothing else (no raw traceback from deep inside JAX) reaches the user.

"Builds" means `jax.eval_shape(make_train(config), key)`: the whole program is traced (every
shape and dtype decided) without compiling or running it, which is where a config that slipped
past the checks would fail.
"""

import jax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
