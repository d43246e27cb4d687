"""Learning test: after a short self-play run, MuZero beats a uniform random legal player at
9x9 Go (pgx) in at least 80% of games, under standard Go rules.

The run is the `go_9x9` preset (its 98,304 self-play moves, with passing closed for the first
100 moves of each training game and the board's 8 symmetries as augmentation) with the env
as the search model (`agent.search.model=env`, AlphaZero-style: the networks are trained by
MuZero's losses, the tree steps the real rules). The evaluation plays 256 games, half as
each colour on average, with 64 simulations a move and standard rules for both players
(`no_pass_before=0`). docs/results/go.md has the runs behind the numbers.
"""

import os

import jax
import numpy as np
import pytest

from jaxmb import config as config_lib
from jaxmb.evaluate import evaluator
from jaxmb.train import make_train

pytest.importorskip("pgx")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GAMES = 256
SIMULATIONS = 64
OVERRIDES = [
    "agent.search.model=env",
    "train.eval_every=0",
    "run.progress=false",
    "run.tensorboard=false",
]


# `make test-all`, not `make test`: 515 s alone on 2 cores (training, compiling and 256
# evaluation games), and the default run must stay under 15 minutes there. The default run
# checks Go self-play, its sign flips, the symmetries and the evaluation on tiny configs
# (tests/test_two_player.py, tests/envs/test_symmetry.py).
@pytest.mark.heavy
@pytest.mark.slow
def test_muzero_beats_random_at_go():
    config = config_lib.load(os.path.join(ROOT, "configs", "muzero", "go_9x9.yaml"), OVERRIDES)
    state, _ = jax.jit(make_train(config))(jax.random.key(0))
    evaluate = evaluator(
        config,
        episodes=GAMES,
        budget=SIMULATIONS,
        env_params={"no_pass_before": 0},
        win_rates=True,
    )
    agents = jax.tree.map(lambda x: x[None], state.agent)
    outcome, win_rate = evaluate(agents, jax.random.key(1)[None])
    win_rate, outcome = float(win_rate[0]), float(outcome[0])
    print(f"9x9 Go: {win_rate:.3f} of {GAMES} games won against random (outcome {outcome:+.3f})")
    # Every game is scored by move 162 (no draws with komi 7.5): outcome = wins - losses.
    np.testing.assert_allclose(outcome, 2 * win_rate - 1, atol=1e-6)
    assert win_rate >= 0.8, f"won {win_rate:.3f} of {GAMES} games against random"
