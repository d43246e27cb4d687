"""Seeds sharded over devices and processes give the same run as the unsharded program.

Every test starts fresh Python processes: the number of CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=N`) and `jax.distributed` must be set
before JAX starts. This file is also the worker those processes run:

    python tests/test_distributed.py sharded OUT HOW[,HOW]         # 8 seeds, one process
    python tests/test_distributed.py process ID COUNT PORT OUT HOW[,HOW]   # 4 seeds
    python tests/test_distributed.py reference OUT                 # 4 seeds, unsharded
    python tests/test_distributed.py indivisible                   # 6 seeds on 4 devices
    python tests/test_distributed.py helpers                       # toy programs, 4 devices

HOW is "jit" (`compile_sharded`), "jit_run" (`init_sharded` + `compile_sharded_run`, the
fresh-or-resumed path of `jaxmb.run`) or "shard_map" (`compile_sharded(..., shard_map=True)`).
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from tiny_config import FAST_XLA_FLAGS
from tiny_config import TINY as BASE_TINY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 600  # a compile of the TINY program takes 10 to 60 s, depending on the load

# tests/tiny_config.py's TINY, on a shorter budget: 6 iterations of 16 env steps, learning from
# the 2nd, evaluation at the 3rd and the 6th, a report at iterations 1, 2, 4, 6 and a
# checkpoint at 3 and 6.
TINY = [
    *BASE_TINY,
    "train.total_env_steps=96",
    "train.eval_every=48",
    "train.log_every=32",
    "train.checkpoint_every=48",
]
REPORT_ITERATIONS = [1, 2, 4, 6]
CHECKPOINT_ITERATIONS = [3, 6]


# ------------------------------------------------------------------------------- worker side


def _run(num_seeds: int, how: str) -> dict:
    """Trains the TINY config; returns host metrics, final params and what callbacks saw.

    `how`: "unsharded" (`jax.jit(train)` on one device); "jit" (`compile_sharded`);
    "jit_run" (`init_sharded`, then `compile_sharded_run`); "shard_map"
    (`compile_sharded(..., shard_map=True)`, with the loop's `jax.debug.callback` routed
    through `distributed.seed_callback`, the change train.py needs for that mode).
    """
    import jax

    from jaxmb import config as config_lib
    from jaxmb import distributed
    from jaxmb.train import make_train

    cfg = config_lib.load(None, TINY)
    reports, checkpoints = [], []

    def on_report(report):
        reports.append(jax.tree.map(np.asarray, report))

    def on_checkpoint(state):
        checkpoints.append(
            (int(np.asarray(state.iteration)), np.asarray(state.agent.num_updates).shape)
        )

    train = make_train(
        cfg, callback=on_report, checkpoint_callback=on_checkpoint, num_seeds=num_seeds
    )
    keys = jax.random.split(jax.random.key(0), num_seeds)
    mesh = distributed.seed_mesh()
    start = time.perf_counter()
    if how == "unsharded":
        compiled, args = jax.jit(train).lower(keys).compile(), keys
    elif how == "jit":
        compiled, args = distributed.compile_sharded(train, keys, mesh)
    elif how == "jit_run":
        args = distributed.init_sharded(train, keys, mesh)
        compiled = distributed.compile_sharded_run(train, args, mesh)
    else:
        original = jax.debug.callback
        jax.debug.callback = distributed.seed_callback
        try:
            compiled, args = distributed.compile_sharded(train, keys, mesh, shard_map=True)
        finally:
            jax.debug.callback = original
    _progress(f"{how}: compiled in {time.perf_counter() - start:.1f} s")
    state, metrics = compiled(args)
    jax.block_until_ready(metrics)
    jax.effects_barrier()
    _progress(f"{how}: ran")
    host = distributed.to_host({"metrics": metrics, "params": state.agent.params})
    if how == "jit_run":
        # A host state (as restored from a checkpoint) goes back onto the mesh unchanged; in
        # each process only its own devices' seeds are filled.
        host_state = distributed.to_host(state)
        state_shardings, _ = distributed.seed_shardings(train, keys, mesh)
        again = distributed.to_host(distributed.to_global(host_state, state_shardings))
        differ = [
            jax.tree_util.keystr(path)
            for (path, a), b in zip(
                jax.tree_util.tree_flatten_with_path(host_state)[0],
                jax.tree.leaves(again),
                strict=True,
            )
            if not _same(a, b)
        ]
        assert not differ, f"to_global/to_host changed {differ}"
    _progress(f"{how}: gathered")
    flat, _ = jax.tree_util.tree_flatten_with_path(host["params"])
    return {
        "metrics": host["metrics"],
        "params": {jax.tree_util.keystr(path): leaf for path, leaf in flat},
        "reports": reports,
        "checkpoints": checkpoints,
        "out_shardings": {
            "loss": str(getattr(metrics["loss"].sharding, "spec", None)),
            "iteration": str(getattr(state.iteration.sharding, "spec", None)),
        },
        "iteration": int(distributed.to_host(state.iteration)),
    }


def _helpers() -> None:
    """Toy programs on 4 devices, 8 seeds (2 a device): the shard_map helpers see all seeds,
    and host trees go to the mesh and back unchanged."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from jaxmb import distributed

    mesh = distributed.seed_mesh()
    assert mesh.size == 4
    seeds = NamedSharding(mesh, P("seeds"))
    one_true = np.zeros(8, bool)
    one_true[5] = True  # on the third device only
    calls = []

    def program(flags, values):
        distributed.seed_callback(lambda v, n: calls.append((np.asarray(v), int(n))), values, 7)
        return (
            jnp.broadcast_to(distributed.any_seed(flags), flags.shape),
            jnp.broadcast_to(distributed.all_seeds(flags), flags.shape),
            jnp.broadcast_to(distributed.all_seeds(~flags), flags.shape),
        )

    flags = distributed.to_global(one_true, seeds)
    values = distributed.to_global(np.arange(8.0), seeds)
    for shard_map in (False, True):
        calls.clear()
        fn = program
        if shard_map:
            fn = jax.shard_map(program, mesh=mesh, in_specs=P("seeds"), out_specs=P("seeds"))
        fn = jax.jit(fn, in_shardings=(seeds, seeds), out_shardings=(seeds,) * 3)
        any_, all_, all_not = jax.block_until_ready(fn(flags, values))
        jax.effects_barrier()
        assert np.asarray(any_).all() and not np.asarray(all_).any(), shard_map
        assert not np.asarray(all_not).any(), shard_map
        assert len(calls) == 1, (shard_map, calls)
        np.testing.assert_array_equal(calls[0][0], np.arange(8.0))
        assert calls[0][1] == 7

    keys = jax.random.split(jax.random.key(3), 8)
    tree = {"keys": keys, "x": np.arange(24.0).reshape(8, 3), "count": np.int32(5)}
    shardings = {"keys": seeds, "x": seeds, "count": NamedSharding(mesh, P())}
    placed = distributed.to_global(tree, shardings)
    assert placed["x"].sharding.spec == P("seeds") and len(placed["x"].addressable_shards) == 4
    back = distributed.to_host(placed)
    np.testing.assert_array_equal(_raw(back["keys"]), _raw(keys))
    np.testing.assert_array_equal(back["x"], tree["x"])
    assert int(back["count"]) == 5
    print("HELPERS_OK")


def _same(a, b) -> bool:
    a, b = _raw(a), _raw(b)
    return np.array_equal(a, b, equal_nan=np.issubdtype(a.dtype, np.inexact))


def _raw(x):
    import jax

    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(x))
    return np.asarray(x)


def _progress(message: str) -> None:
    """A line on stderr, so a failed or stuck worker shows how far it got."""
    import jax

    print(f"[process {jax.process_index()}] {message}", file=sys.stderr, flush=True)


def _save(result, path: str) -> None:
    with open(path, "wb") as f:
        pickle.dump(result, f)


def _worker(argv: list[str]) -> None:
    import jax

    from jaxmb import distributed

    mode = argv[0]
    if mode == "sharded":  # sharded OUT HOW[,HOW]: 8 seeds, compared with unsharded
        assert jax.device_count() > 1, "set XLA_FLAGS=--xla_force_host_platform_device_count"
        result = {"num_devices": jax.device_count(), "unsharded": _run(8, "unsharded")}
        for how in argv[2].split(","):
            result[how] = _run(8, how)
        _save(result, argv[1])
    elif mode == "process":  # process ID COUNT PORT OUT HOW[,HOW]: 4 seeds
        process_id, num_processes, port, out = int(argv[1]), int(argv[2]), argv[3], argv[4]
        distributed.initialize(f"127.0.0.1:{port}", num_processes, process_id)
        result = {
            "process_index": jax.process_index(),
            "local_devices": jax.local_device_count(),
            "global_devices": jax.device_count(),
        }
        for how in argv[5].split(","):
            result[how] = _run(4, how)
        _save(result, out)
    elif mode == "reference":
        _save(_run(4, "unsharded"), argv[1])
    elif mode == "indivisible":
        from jaxmb import config as config_lib
        from jaxmb.config import ConfigError
        from jaxmb.train import make_train

        train = make_train(config_lib.load(None, TINY), num_seeds=6)
        keys = jax.random.split(jax.random.key(0), 6)
        for entry in (distributed.compile_sharded, distributed.init_sharded):
            try:
                entry(train, keys, distributed.seed_mesh())
            except ConfigError as err:
                print(f"{entry.__name__}: CONFIG_ERROR key={err.key} message={err}")
            else:
                print(f"{entry.__name__}: NO_ERROR")
    elif mode == "helpers":
        _helpers()
    elif mode == "sweep":  # sweep OUT ROOT: jaxmb.sweep of 2 learning rates, 1 seed each
        import jaxmb
        from jaxmb import config as config_lib

        config = config_lib.load(
            None, [*TINY, f"run.root={argv[2]}", "run.progress=false", "run.tensorboard=false"]
        )
        result = jaxmb.sweep(config, seeds=1, grid={"agent.optim.learning_rate": [1e-3, 1e-2]})
        with open(os.path.join(result.sweep_dir, "summary.json")) as f:
            mesh = json.load(f)["mesh"]
        _save({"metrics": result.metrics, "mesh": mesh}, argv[1])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


# ------------------------------------------------------------------------------- test side


def _env(num_devices: int) -> dict:
    flags = [
        f
        for f in os.environ.get("XLA_FLAGS", "").split()
        if not f.startswith("--xla_force_host_platform_device_count")
    ]
    flags.append(f"--xla_force_host_platform_device_count={num_devices}")
    flags.extend(FAST_XLA_FLAGS)
    return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=" ".join(flags))


def _command(*args) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), *map(str, args)]


def _clean(text: str | None, limit: int = 6000) -> str:
    """The output without XLA's one-warning-per-leaf notes on gathering callback operands."""
    lines = (text or "").splitlines()
    kept = "\n".join(line for line in lines if "Involuntary full rematerialization" not in line)
    return kept if len(kept) <= limit else kept[: limit // 3] + "\n[...]\n" + kept[-limit // 2 :]


def _check_run(proc: subprocess.CompletedProcess, what: str) -> None:
    assert proc.returncode == 0, (
        f"{what} exited with {proc.returncode}\n--- stdout\n{_clean(proc.stdout)}"
        f"\n--- stderr\n{_clean(proc.stderr)}"
    )


def _run_worker(num_devices: int, *args) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(
            _command(*args),
            env=_env(num_devices),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"worker {args} timed out after {TIMEOUT_S} s\n{_clean(err.stderr)}")
    _check_run(proc, f"worker {args}")
    return proc


def _load(path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _assert_same_run(actual: dict, expected: dict, *, rtol: float, atol: float) -> None:
    assert actual["metrics"].keys() == expected["metrics"].keys()
    for name, value in expected["metrics"].items():
        np.testing.assert_allclose(
            actual["metrics"][name], value, rtol=rtol, atol=atol, err_msg=name
        )
    assert actual["params"].keys() == expected["params"].keys()
    for name, value in expected["params"].items():
        np.testing.assert_allclose(
            actual["params"][name], value, rtol=rtol, atol=atol, err_msg=name
        )


def _difference(a: dict, b: dict) -> str:
    """Whether two runs are bit-identical, and otherwise their largest difference."""
    worst, where = 0.0, None
    for group in ("metrics", "params"):
        for name, x in a[group].items():
            y = b[group][name]
            if np.array_equal(x, y, equal_nan=True):
                continue
            gap = float(np.nanmax(np.abs(x.astype(np.float64) - y.astype(np.float64))))
            if gap >= worst:
                worst, where = gap, f"{group} {name}"
    return (
        "bit-identical"
        if where is None
        else f"not bit-identical, max |diff| {worst:.2g} in {where}"
    )


def _assert_callbacks(run: dict, num_seeds: int) -> None:
    """Reports and checkpoints came once per scheduled iteration, with all seeds' arrays."""
    assert [int(r["iteration"]) for r in run["reports"]] == REPORT_ITERATIONS
    assert all(r["loss"].shape == (num_seeds,) for r in run["reports"])
    assert run["checkpoints"] == [(i, (num_seeds,)) for i in CHECKPOINT_ITERATIONS]


def _assert_same_reports(actual: dict, expected: dict) -> None:
    for got, want in zip(actual["reports"], expected["reports"], strict=True):
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize(
    ("num_devices", "modes"),
    # `make test-all` only, with the other multi-device runs of jaxmb.run
    # (test_cli_two_processes_match_one, test_sweep_shards_members_and_envs_like_one_device).
    [
        pytest.param(8, ["jit"], marks=pytest.mark.heavy),
        pytest.param(4, ["shard_map"], marks=pytest.mark.heavy),
    ],
    ids=["8dev-jit", "4dev-shard_map"],
)
def test_sharded_seeds_match_unsharded(num_devices, modes, tmp_path):
    """8 seeds over 8 devices (one each) or 4 (two each): the unsharded program's metrics,
    parameters and callbacks (once per report, with the global [8] arrays). One mode each,
    to keep the compiles few; the two-process test runs both."""
    out = tmp_path / "result.pkl"
    _run_worker(num_devices, "sharded", out, ",".join(modes))
    result = _load(out)
    assert result["num_devices"] == num_devices
    unsharded = result["unsharded"]
    _assert_callbacks(unsharded, 8)
    for how in modes:
        sharded = result[how]
        assert sharded["out_shardings"] == {"loss": "P('seeds',)", "iteration": "P()"}, how
        assert sharded["metrics"]["loss"].shape == (8, 6)
        assert np.isfinite(sharded["metrics"]["loss"][:, 1:]).all()
        _assert_same_run(sharded, unsharded, rtol=1e-5, atol=1e-6)
        _assert_callbacks(sharded, 8)
        _assert_same_reports(sharded, unsharded)
        print(f"{num_devices} devices, {how}: {_difference(sharded, unsharded)}")


class _Worker:
    """A worker process whose output goes to a file: a pipe nobody reads while we wait on
    another process fills up (XLA warns once per gathered leaf) and blocks its writer, and
    its peer then waits forever in a collective."""

    def __init__(self, name: str, num_devices: int, args, tmp_path):
        self.name = name
        self.log_path = tmp_path / f"{name}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            _command(*args),
            env=_env(num_devices),
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait(self, deadline: float) -> int | None:
        """The exit code, or None if it ran past the deadline (it is then killed)."""
        try:
            return self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        finally:
            self._log.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def output(self) -> str:
        self._log.close()
        return self.log_path.read_text()


def _wait_all(workers: list[_Worker], deadline: float) -> list[int | None]:
    """Exit codes; once one fails or time runs out, the others are killed (they would wait
    for it in their next collective)."""
    codes = []
    for worker in workers:
        codes.append(worker.wait(deadline))
        if codes[-1] != 0:
            for other in workers:
                other.kill()
    return codes


# 5 compiles (2 modes x 2 processes + the reference): 2 to 4 minutes, `make test-all`. Beyond
# test_cli_two_processes_match_one (the path users take), it checks shard_map and the
# to_global round trip across processes.
@pytest.mark.heavy
def test_two_processes_match_one(tmp_path):
    """2 processes x 2 devices, 4 seeds: the metrics of one process running the 4 seeds.

    Both modes (jit as `jaxmb.run` compiles: `init_sharded` + `compile_sharded_run`, and a
    host state round-trips through `to_global`); callbacks run once, in process 0, with the
    global [4] arrays, and never in process 1.
    """
    modes = ",".join(["jit_run", "shard_map"])
    reference = _Worker("reference", 1, ["reference", tmp_path / "reference.pkl"], tmp_path)
    try:
        for attempt in range(2):  # again if another program took the free port meanwhile
            port = _free_port()
            workers = [
                _Worker(
                    f"process{i}",
                    2,
                    ["process", i, 2, port, tmp_path / f"process{i}.pkl", modes],
                    tmp_path,
                )
                for i in range(2)
            ]
            codes = _wait_all(workers, time.monotonic() + TIMEOUT_S)
            if codes == [0, 0]:
                break
            outputs = [worker.output() for worker in workers]
            if attempt == 0 and any("address already in use" in o.lower() for o in outputs):
                continue
            report = "\n".join(
                f"--- process {i}: "
                + (f"exit {code}" if code is not None else f"killed after {TIMEOUT_S} s")
                + f"\n{_clean(o)}"
                for i, (code, o) in enumerate(zip(codes, outputs, strict=True))
            )
            pytest.fail(f"multi-process run failed\n{report}")
        code = reference.wait(time.monotonic() + TIMEOUT_S)
        assert code == 0, f"reference run failed ({code})\n{_clean(reference.output())}"
    finally:
        reference.kill()

    expected = _load(tmp_path / "reference.pkl")
    first, second = (_load(tmp_path / f"process{i}.pkl") for i in range(2))
    for i, result in enumerate((first, second)):
        assert (result["process_index"], result["local_devices"]) == (i, 2)
        assert result["global_devices"] == 4
    for how in modes.split(","):
        for result in (first, second):
            # to_host gives every process the metrics and params of all 4 seeds.
            assert result[how]["iteration"] == 6
            assert result[how]["metrics"]["loss"].shape == (4, 6)
            _assert_same_run(result[how], expected, rtol=1e-5, atol=1e-6)
        print(f"2 processes, {how}: {_difference(first[how], expected)}")
        _assert_callbacks(first[how], 4)
        _assert_same_reports(first[how], expected)
        assert second[how]["reports"] == [] and second[how]["checkpoints"] == [], how


def test_seeds_not_divisible_by_devices_is_a_config_error():
    proc = _run_worker(4, "indivisible")
    for entry in ("compile_sharded", "init_sharded"):
        assert f"{entry}: CONFIG_ERROR key=run.num_seeds" in proc.stdout, proc.stdout
    assert "6 seeds" in proc.stdout and "4 devices" in proc.stdout


def test_seed_helpers_see_all_devices():
    """`any_seed`, `all_seeds` and `seed_callback` give the same answers with and without
    `shard_map`; `to_global` and `to_host` round-trip a tree with keys and a counter."""
    proc = _run_worker(4, "helpers")
    assert "HELPERS_OK" in proc.stdout, proc.stdout


if __name__ == "__main__":
    _worker(sys.argv[1:])


# 2 compiles in subprocesses, about 80 s on 2 cores: `make test-all`. It checks the envs axis
# of the mesh and hparams split like the members.
@pytest.mark.heavy
def test_sweep_shards_members_and_envs_like_one_device(tmp_path):
    """`jaxmb.sweep` (through `jaxmb.run.train_run`) on 8 devices: 2 members x 4 envs is a
    (2, 4) mesh, members over "seeds" and each member's envs over "envs", with traced
    learning rates split like the members; the metrics are the 1-device run's."""
    results = {}
    for num_devices in (8, 1):
        out = tmp_path / f"sweep{num_devices}.pkl"
        _run_worker(num_devices, "sweep", out, tmp_path / f"runs{num_devices}")
        results[num_devices] = _load(out)
    assert results[8]["mesh"] == {"processes": 1, "seeds": 2, "envs": 4}
    assert results[1]["mesh"] == {"processes": 1, "seeds": 1, "envs": 1}
    for name, value in results[1]["metrics"].items():
        np.testing.assert_allclose(
            results[8]["metrics"][name], value, rtol=1e-5, atol=1e-6, err_msg=name
        )


def _cli_train(process_id: int | None, port: int, root, tmp_path) -> _Worker:
    args = ["-m", "jaxmb", "train", *TINY, "run.num_seeds=2", f"run.root={root}"]
    args += ["run.name=cli", "run.tensorboard=false", "--quiet"]
    if process_id is not None:
        args += ["--coordinator", f"127.0.0.1:{port}", "--num-processes", 2]
        args += ["--process-id", process_id]
    name = "cli-reference" if process_id is None else f"cli-process{process_id}"
    worker = _Worker.__new__(_Worker)
    worker.name = name
    worker.log_path = tmp_path / f"{name}.log"
    worker._log = open(worker.log_path, "w")
    worker.proc = subprocess.Popen(
        [sys.executable, *map(str, args)],
        env=_env(1),
        cwd=ROOT,
        stdout=worker._log,
        stderr=subprocess.STDOUT,
    )
    return worker


def _metric_rows(run_dir) -> dict:
    rows = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            rows[(row["iteration"], row["seed_index"])] = row
    return rows


# 3 processes compiling the TINY program, about 100 s on 2 cores: `make test-all`, to keep the
# default run under 15 minutes. The default run keeps the in-process multi-device checks
# (test_seeds_not_divisible_by_devices_is_a_config_error, test_seed_helpers_see_all_devices).
@pytest.mark.heavy
def test_cli_two_processes_match_one(tmp_path):
    """`python -m jaxmb train ... --coordinator --num-processes 2 --process-id i`, one device
    each, 2 seeds: process 0 writes the run directory, with the metrics and final returns of
    the same command run as one process."""
    reference = _cli_train(None, 0, tmp_path / "one", tmp_path)
    try:
        port = _free_port()
        workers = [_cli_train(i, port, tmp_path / "two", tmp_path) for i in range(2)]
        codes = _wait_all(workers, time.monotonic() + TIMEOUT_S)
        outputs = [worker.output() for worker in workers]
        assert codes == [0, 0], "\n".join(_clean(o) for o in outputs)
        code = reference.wait(time.monotonic() + TIMEOUT_S)
        assert code == 0, _clean(reference.output())
    finally:
        reference.kill()
    with open(tmp_path / "two" / "cli" / "summary.json") as f:
        two = json.load(f)
    with open(tmp_path / "one" / "cli" / "summary.json") as f:
        one = json.load(f)
    assert two["mesh"] == {"processes": 2, "seeds": 2, "envs": 1}
    np.testing.assert_allclose(two["final_eval_return"], one["final_eval_return"], rtol=1e-5)
    rows_two, rows_one = (
        _metric_rows(tmp_path / "two" / "cli"),
        _metric_rows(tmp_path / "one" / "cli"),
    )
    assert rows_two.keys() == rows_one.keys()
    for key, row in rows_one.items():
        for name, value in row.items():
            if isinstance(value, float):
                assert rows_two[key][name] == pytest.approx(value, rel=1e-5, abs=1e-6), (key, name)
    # Process 0 wrote the checkpoints (every 48 env steps = 3 iterations, and the end).
    assert sorted(os.listdir(tmp_path / "two" / "cli" / "checkpoints")) == ["3", "6"]
