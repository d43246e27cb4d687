"""jaxmb: model-based RL research in JAX.

    import jax, jaxmb
    config = jaxmb.config.load("muzero/cartpole")  # a preset by name, or a YAML path
    train = jaxmb.make_train(config)
    state, metrics = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(0), 2))

Submodules: `config` (typed configs), `envs` (environments), `agents` (the agent protocol,
the registry behind `agent.kind`, MuZero), `search` (the mctx layer), `replay`, `targets`,
`losses` (the loss-term registry), `rewards` (reward transforms), `transfer` (transfer by
part), `networks`, `loop` (the compiled loop; `train` is its earlier name),
`run` (run directories), `memory` (the peak memory a run needs, checked before it runs),
`checkpoint`, `hparams` (traced hyperparameters), `sweeps` (`jaxmb.sweep`), `distributed`
(devices and hosts), `policy` (`load_policy`: a trained agent as `policy(obs)`),
`experiments` (the planning experiments).
"""

from typing import Any

from jaxmb import config, envs
from jaxmb.agents import MuZero
from jaxmb.config import Config, ConfigError
from jaxmb.policy import load_policy
from jaxmb.train import make_train

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "MuZero",
    "config",
    "envs",
    "load_policy",
    "make_train",
    "sweep",
]


def __getattr__(name: str) -> Any:
    # `jaxmb.sweep` pulls in plotting and scipy: imported on first use only.
    if name == "sweep":
        from jaxmb.sweeps import sweep

        return sweep
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
