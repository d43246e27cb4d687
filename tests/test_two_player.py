"""Two-player zero-sum games (pgx Go): sign flips in targets and search, self-play and the
evaluation against a random player and against the previous evaluation's params."""

import jax
import numpy as np
import pytest
from tiny_config import TINY

from jaxmb import config as config_lib
from jaxmb.targets import nstep_value_targets
from jaxmb.train import make_train

pytest.importorskip("pgx")

GO_TINY = [
    *TINY,
    "env.id=pgx:go_9x9",
    "env.num_eval_envs=4",
    "env.eval_max_steps=170",  # every game ends (pgx scores it at move 162)
    "agent.network.torso=resnet",
    "agent.network.conv_channels=4",
    "agent.network.num_res_blocks=0",
    "agent.loss.discount=1.0",
    "replay.augment_symmetries=true",  # the run trains on windows under the board's symmetries
]


def test_two_player_targets_alternate_signs():
    """Movers A, B, A; A's move at t=2 wins the game (+1 to A). From A's view at t=0 the
    return is +1, from B's view at t=1 it is -1, and after the end the targets are 0."""
    rewards = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.0], np.float32)
    terminated = np.array([0, 0, 1, 0, 0, 0], bool)
    zeros = np.zeros(6, np.float32)
    targets = nstep_value_targets(
        rewards,
        terminated,
        np.zeros(6, bool),
        zeros,
        zeros,
        discount=-1.0,
        td_steps=3,
        num_positions=3,
    )
    np.testing.assert_allclose(targets, [1.0, -1.0, 1.0])
    # With a bootstrap: no end within the window, value 0.5 for the player to move at t=2.
    values = np.array([0, 0, 0.5, 0.5, 0.5, 0.5], np.float32)
    targets = nstep_value_targets(
        np.zeros(6, np.float32),
        np.zeros(6, bool),
        np.zeros(6, bool),
        values,
        zeros,
        discount=-0.9,
        td_steps=2,
        num_positions=1,
    )
    np.testing.assert_allclose(targets, [0.81 * 0.5])


@pytest.fixture(scope="module")
def go_run():
    config = config_lib.load(None, GO_TINY)
    train = make_train(config)
    state, metrics = jax.jit(train)(jax.random.key(0))
    return config, train, state, metrics


def test_self_play_uses_signed_discounts(go_run):
    config, train, _, _ = go_run
    agent = train.loop.agent
    assert agent.num_players == 2 and agent.signed_discount == -config.agent.loss.discount
    # One-player envs keep the discount as it is.
    assert make_train(config_lib.load(None, TINY)).loop.agent.signed_discount == 0.99


def test_evaluation_reports_win_rates(go_run):
    _, _, state, metrics = go_run
    evaluated = np.isfinite(np.asarray(metrics["eval/episode_return"]))
    assert evaluated.sum() == 2
    win_rate = np.asarray(metrics["eval/win_rate"])[evaluated]
    outcome = np.asarray(metrics["eval/episode_return"])[evaluated]
    previous = np.asarray(metrics["eval/win_rate_previous"])[evaluated]
    assert ((0 <= win_rate) & (win_rate <= 1) & (0 <= previous) & (previous <= 1)).all()
    # Every game ends (no draws with komi 7.5): the mean outcome is wins minus losses.
    np.testing.assert_allclose(outcome, 2 * win_rate - 1, atol=1e-6)
    # The opponent params are those of the last evaluation, which is the end of the run.
    same = jax.tree.map(
        lambda a, b: np.array_equal(a, b), state.opponent_params, state.agent.params
    )
    assert all(jax.tree.leaves(same))


def test_evaluate_run_reports_win_rates_under_other_rules(go_run, tmp_path):
    """`jaxmb eval` of a Go run: win rates against random, at another budget and with env
    params over the run's (here a rule the run was not trained with)."""
    from jaxmb import configlib
    from jaxmb.checkpoint import Checkpointer
    from jaxmb.evaluate import eval_config, evaluate_run

    config, _, state, _ = go_run
    # The trained state as a one-seed run directory (what `train_run` writes).
    run_dir = tmp_path / "go"
    configlib.dump_yaml(config, str(run_dir / "config.yaml"))
    checkpointer = Checkpointer(str(run_dir / "checkpoints"))
    checkpointer.save(config.num_iterations, jax.tree.map(lambda x: x[None], state))
    checkpointer.close()

    rules = {"no_pass_before": 100}
    changed = eval_config(config, episodes=3, budget=0, env_params=rules)
    assert changed.env.params == rules and changed.env.num_eval_envs == 3
    assert not changed.agent.search.for_acting_test
    assert eval_config(config, episodes=3).agent.search == config.agent.search
    result = evaluate_run(str(run_dir), episodes=3, budget=0, env_params=rules)
    assert set(result) == {"per_seed", "mean", "win_rate_per_seed", "win_rate"}
    rate, outcome = result["win_rate_per_seed"][0], result["per_seed"][0]
    np.testing.assert_allclose(rate * 3, round(rate * 3), atol=1e-6)  # of 3 games
    # Every game ends within eval_max_steps (no draws): the outcome is wins minus losses.
    np.testing.assert_allclose(outcome, 2 * rate - 1, atol=1e-6)


def test_planning_experiment_reports_win_rates(go_run):
    """The planning experiment's evaluator on a two-player game: outcomes and win rates per
    seed, turned into CSV rows with a `win_rate` column and a per-variant mean win rate."""
    import jax.numpy as jnp

    from jaxmb.evaluate import evaluator
    from jaxmb.experiments.planning import result_rows, variant_stats

    config, _, state, _ = go_run
    states = jax.tree.map(lambda x: jnp.stack([x, x]), state.agent)  # two seeds, one agent
    keys = jax.random.split(jax.random.key(3), 2)
    outcomes, rates = evaluator(config, episodes=3, budget=0, win_rates=True)(states, keys)
    assert outcomes.shape == rates.shape == (2,)
    np.testing.assert_allclose(rates * 3, np.round(rates * 3), atol=1e-6)  # of 3 games
    np.testing.assert_allclose(outcomes, 2 * rates - 1, atol=1e-6)  # no draws
    rows = result_rows((np.asarray(outcomes), np.asarray(rates)), variant="learn", test_budget=0)
    assert [sorted(r) for r in rows] == [
        ["return", "seed", "test_budget", "variant", "win_rate"]
    ] * 2
    assert variant_stats(rows)["learn"]["win_rate"] == pytest.approx(float(np.mean(rates)))
    # One-player rows have no win rate.
    rows = result_rows((np.array([1.0, 2.0]), None), variant="data")
    assert "win_rate" not in rows[0] and "win_rate" not in variant_stats(rows)["data"]


def test_symmetry_augmentation_moves_whole_windows(go_run):
    """`replay.apply_symmetries` on windows of the run's self-play: each window's
    observations, actions, policies and legal masks are moved by one transform, the rest is
    unchanged, and the transforms vary between windows."""
    from jaxmb import replay as replay_lib

    _, train, state, _ = go_run
    sym = train.loop.symmetries
    assert sym is train.loop.env.symmetries and sym.num == 8
    sample = replay_lib.sample(state.replay, jax.random.key(1), 64, 3)
    data = jax.tree.map(np.asarray, sample.data)
    moved = jax.tree.map(
        np.asarray, replay_lib.apply_symmetries(sample.data, sym, jax.random.key(2))
    )
    assert set(moved) == set(data)
    for name in set(data) - set(replay_lib.SYMMETRIC_KEYS):
        np.testing.assert_array_equal(moved[name], data[name])
    identity = 0
    for b in range(64):
        window = {name: data[name][b] for name in replay_lib.SYMMETRIC_KEYS}
        transformed = [
            {
                "obs": sym.obs(window["obs"], g),
                "action": sym.actions(window["action"], g),
                "policy": sym.action_values(window["policy"], g),
                "action_mask": sym.action_values(window["action_mask"], g),
            }
            for g in range(sym.num)
        ]
        same = [all(np.array_equal(t[name], moved[name][b]) for name in t) for t in transformed]
        assert any(same), f"window {b} is not one transform of its original"
        identity += same[0]
    assert identity < 32, f"{identity} of 64 windows left as they were"


def test_symmetry_augmentation_reaches_the_updates(go_run):
    """The same SGD updates, on the same replay with the same key, differ with and without
    augmentation: the training loop applies it."""
    config, train, state, _ = go_run
    guard = (np.zeros((), bool), np.zeros((), np.int32), np.zeros((), np.int32))
    plain = make_train(config_lib.load(None, [*GO_TINY, "replay.augment_symmetries=false"]))
    assert plain.loop.symmetries is None
    key = jax.random.key(5)
    augmented = train.loop.learn(state.agent, state.replay, key, guard)[2]
    unaugmented = plain.loop.learn(state.agent, state.replay, key, guard)[2]
    assert np.isfinite(augmented["loss"]) and np.isfinite(unaugmented["loss"])
    assert not np.isclose(augmented["loss"], unaugmented["loss"])


def test_symmetry_augmentation_needs_an_env_with_symmetries():
    from jaxmb.config import ConfigError

    with pytest.raises(ConfigError, match="replay.augment_symmetries") as err:
        make_train(config_lib.load(None, [*TINY, "replay.augment_symmetries=true"]))
    assert "has no symmetries" in str(err.value)
