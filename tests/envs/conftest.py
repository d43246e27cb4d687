"""Fixtures shared by the env tests."""

import pytest
from random_walk_env import RandomWalkEnv


@pytest.fixture(scope="session")
def walk_env() -> RandomWalkEnv:
    return RandomWalkEnv()
