"""Atari 100k scoring (issue 26): human-normalised scores against a hand computation."""

import numpy as np
import pytest

from jaxmb.config import ConfigError
from jaxmb.experiments import atari100k


def test_human_normalised_score_by_hand():
    # EfficientZero's Ms. Pacman: (1281.2 - 307.3) / (6951.6 - 307.3) = 973.9 / 6644.3.
    assert atari100k.human_normalised(1281.2, "MsPacman") == pytest.approx(0.146577, abs=1e-6)
    # Hero through its env id; random scores 0 and human scores 1.
    assert atari100k.human_normalised(1027.0, "ale:Hero-v5") == 0.0
    assert atari100k.human_normalised(30826.4, "ale:Hero-v5") == pytest.approx(1.0)
    np.testing.assert_allclose(
        atari100k.human_normalised([3095.0, 9315.9], "Hero"),
        [2068.0 / 29799.4, 8288.9 / 29799.4],
    )


def test_a_game_without_published_scores_names_the_close_ones():
    with pytest.raises(ConfigError, match="MsPacman") as err:
        atari100k.human_normalised(1.0, "ale:MsPacmann-v5")
    assert err.value.key == "env.id"


def test_score_plot_is_written(tmp_path):
    path = atari100k.plot_scores(
        {"MsPacman": [500.0, 700.0], "Hero": [2000.0]}, str(tmp_path / "s.png")
    )
    assert (tmp_path / "s.png").stat().st_size > 0 and path.endswith("s.png")
