"""A run directory that cannot take the run fails with a clear error before anything compiles."""

import collections

import pytest
from tiny_config import tiny

from jaxmb import run as run_lib
from jaxmb.config import ConfigError


def test_unwritable_run_root_is_a_config_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = tiny(f"run.root={blocker}/runs", "run.progress=false")
    with pytest.raises(ConfigError, match="run.root: cannot write the run directory"):
        run_lib.train_run(config)


@pytest.mark.parametrize(
    "override, part, key",
    [
        ("replay.capacity=65536", "the replay buffer", "replay.capacity"),
        # Parameters, not replay: the message names the part that is most of the state.
        ("agent.network.latent_dim=1024", "the optimiser state", "agent.network.latent_dim"),
    ],
)
def test_a_disk_too_full_for_the_checkpoints_is_a_config_error(
    tmp_path, monkeypatch, override, part, key
):
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(run_lib.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1024))
    config = tiny(f"run.root={tmp_path}", "run.progress=false", "run.tensorboard=false", override)
    with pytest.raises(ConfigError, match=r"run.root: the disk .* has 0 MiB free") as err:
        run_lib.train_run(config)
    assert f"of it {part})" in str(err.value) and f"lower {key} or run.num_seeds" in str(err.value)
    # Nothing was trained or saved.
    run_dir = next(tmp_path.iterdir())
    assert not list((run_dir / "checkpoints").iterdir())
