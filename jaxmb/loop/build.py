"""The env a config names, with its wrappers (discretisation, action repeat)."""

from __future__ import annotations

from jaxmb.config import Config, ConfigError
from jaxmb.envs import ActionRepeat, HostEnv, MissingDependencyError, UnknownEnvError, make


def build_env(config: Config):
    """The env and its params with the config's overrides applied.

    Raises:
      ConfigError: naming `env.id` (an unknown id, with the close ones; a missing optional
        package, with the `pip install` to run) or `env.params` (a param the env lacks).
    """
    try:
        env, params = make(config.env.id, **dict(config.env.params))
    except (UnknownEnvError, MissingDependencyError) as err:  # before ValueError: a subclass
        raise ConfigError(str(err), "env.id") from err
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err), "env.params") from err
    discretize = config.env.discretize
    if discretize.mode != "none":
        from jaxmb.envs.discretize import Discretize

        try:
            env = Discretize(
                env,
                mode=discretize.mode,
                values_per_dim=discretize.values_per_dim,
                push=discretize.push,
            )
        except (ValueError, TypeError) as err:
            raise ConfigError(str(err), "env.discretize") from err
    if config.env.action_repeat > 1:
        if isinstance(env, HostEnv):
            raise ConfigError(
                f"{config.env.id} is stepped on the host, where action repeat would cost a "
                "host round trip per repeated step; use the suite's own frame skip where it "
                "has one (ale: takes env.params={frame_skip: 4})",
                "env.action_repeat",
            )
        try:
            env = ActionRepeat(env, config.env.action_repeat)
        except ValueError as err:
            raise ConfigError(str(err), "env.action_repeat") from err
    return env, params
