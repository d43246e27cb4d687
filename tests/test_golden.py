"""Golden metrics: short runs whose metrics were stored before the loop was redesigned
(issue "One loop, many agents"), so that a refactor that changes what the program computes
fails here.

The file `golden/metrics.json` was written by this module at commit 9046868 (the last commit
before the agent protocol), on a 2-core AMD EPYC box, with the fast compile options every
non-`slow` test gets (conftest.py):

    JAXMB_RECORD_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_golden.py

Each case is compared within a relative 1e-5 (the issue's bound for a change of operation
order), absolute 1e-6 for values near 0. At the commit that introduced the protocol they were
bit-identical on the recording machine; a CPU with other vector units may round differently.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest
from tiny_config import TINY

from jaxmb import config as config_lib
from jaxmb.train import make_train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "metrics.json")

#: name -> (preset or None, overrides). Short: each learns for a few hundred SGD updates.
CASES = {
    # The default preset (configs/muzero/cartpole.yaml): 12 iterations, learning from the 5th.
    "default": (
        "configs/muzero/cartpole.yaml",
        [
            "train.total_env_steps=768",
            "replay.min_size=256",
            "train.eval_every=384",
            "env.num_eval_envs=4",
            "env.eval_max_steps=100",
        ],
    ),
    # The matched benchmark setting (configs/muzero/matched.yaml).
    "matched": (
        "configs/muzero/matched.yaml",
        [
            "train.total_env_steps=512",
            "replay.min_size=256",
            "train.eval_every=256",
            "env.num_eval_envs=4",
            "env.eval_max_steps=100",
        ],
    ),
    # The paths the two presets leave out, at the TINY size.
    "puct_prioritized_stored": (
        None,
        [
            *TINY,
            "agent.search.algorithm=muzero",
            "replay.prioritized=true",
            "agent.loss.bootstrap=stored",
        ],
    ),
    "one_step": (
        None,
        [
            *TINY,
            "agent.search.for_targets=false",
            "agent.search.for_acting_train=false",
            "agent.search.one_step_target=completed_q",
        ],
    ),
    "reanalyse": (None, [*TINY, "agent.loss.reanalyse_fraction=0.5"]),
}


def _run(name: str) -> dict[str, list]:
    preset, overrides = CASES[name]
    config = config_lib.load(preset and os.path.join(ROOT, preset), overrides)
    state, metrics = jax.jit(make_train(config))(jax.random.key(7))
    out = {k: np.asarray(v).tolist() for k, v in sorted(metrics.items())}
    leaves = jax.tree.leaves(state.agent.params)
    out["params/sum"] = float(sum(np.sum(np.asarray(x, np.float64)) for x in leaves))
    out["params/abs_sum"] = float(sum(np.sum(np.abs(np.asarray(x, np.float64))) for x in leaves))
    return out


def _load() -> dict:
    with open(GOLDEN) as f:
        return json.load(f)


@pytest.mark.skipif(not os.environ.get("JAXMB_RECORD_GOLDEN"), reason="recording only")
def test_record_golden():
    data = {name: _run(name) for name in CASES}
    os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
    with open(GOLDEN, "w") as f:
        json.dump(data, f)


#: The two preset cases take about a minute each on 2 cores: `make test-all` runs them, and
#: the TINY cases cover the same code paths in `make test`.
_HEAVY = {"default", "matched"}


@pytest.mark.skipif(bool(os.environ.get("JAXMB_RECORD_GOLDEN")), reason="recording")
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.heavy) if n in _HEAVY else n for n in CASES]
)
def test_metrics_match_the_golden_file(name):
    golden = _load()[name]
    got = _run(name)
    missing = sorted(set(golden) - set(got))
    assert not missing, f"metrics no longer produced: {missing}"
    for key, want in golden.items():
        want = np.asarray(want, np.float64)
        have = np.asarray(got[key], np.float64)
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6, err_msg=f"{name}: {key}")
