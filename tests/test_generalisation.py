"""Level control for the procedural-generalisation experiment: training resets stay in the
training range, unseen-level resets never draw a training level, and a run without a level
range is refused by name."""

import jax
import numpy as np
import pytest
from tiny_config import TINY

import jaxmb
from jaxmb import envs
from jaxmb.config import ConfigError
from jaxmb.loop.evaluation import LAST_LEVEL, unseen_levels

RESETS = 2048


@pytest.mark.parametrize(
    ("env_id", "extra"),
    [("jaxmb:MiniPacman-v0", {}), ("jaxmb:Sokoban-v0", {"height": 7, "width": 7, "num_boxes": 1})],
)
def test_training_resets_stay_in_range_and_unseen_resets_never_draw_a_training_level(env_id, extra):
    env, _ = envs.make(env_id, **extra)
    keys = jax.random.split(jax.random.key(0), RESETS)
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))  # params traced: one compile
    for num_levels, start_level in ((10, 0), (3, 500)):
        _, params = envs.make(env_id, num_levels=num_levels, start_level=start_level, **extra)
        _, state = reset(keys, params)
        levels = np.asarray(state.level)
        assert levels.min() >= start_level and levels.max() < start_level + num_levels
        assert len(np.unique(levels)) == num_levels  # 2048 draws cover every training level
        _, state = reset(keys, unseen_levels(params))
        unseen = np.asarray(state.level)
        assert unseen.min() >= start_level + num_levels and unseen.max() <= LAST_LEVEL
        assert len(np.unique(unseen)) > RESETS * 0.99  # drawn from about 2**31 levels


def test_unseen_levels_needs_a_level_range():
    _, params = envs.make("jaxmb:MiniPacman-v0")  # num_levels 0: every level
    with pytest.raises(ConfigError, match="env.params.num_levels"):
        unseen_levels(params)
    _, params = envs.make("gymnax:CartPole-v1")
    with pytest.raises(ConfigError, match="env.eval_unseen_levels"):
        unseen_levels(params, "gymnax:CartPole-v1")
    config = jaxmb.config.load(None, [*TINY, "env.eval_unseen_levels=true"])
    with pytest.raises(ConfigError, match="env.eval_unseen_levels"):
        jaxmb.make_train(config)


# The loop's side-by-side logging of both returns is asserted by the tiny study in
# tests/test_ssl_generalisation.py (its metrics.jsonl holds eval/unseen_episode_return).
