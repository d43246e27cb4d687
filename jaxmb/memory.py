"""Memory known before it is spent: the peak a run will need, by part, checked against the
memory the machine has before anything large is traced, allocated or run.

    estimate = train.memory_estimate()      # train = jaxmb.make_train(config, ...)
    print(estimate.describe())              # bytes by part, and the config key behind each
    jaxmb.memory.check(estimate)            # ConfigError naming the key when it does not fit

`make_train` runs the check by default (`run.memory_check=false` skips it), so `python -m
jaxmb train`, `jaxmb.run.train_run`, sweeps and experiments all get it. A run that does not
fit fails with a `ConfigError` naming the key that contributes the most, e.g.

    replay.capacity: the replay buffer needs 96.0 GB (2 copies of 48.0 GB: the compiled
    program's input and output states), this host has 23.4 GB available ...

The estimate has four kinds of part:

- **state**: the train state (`train.state_shapes`, from `jax.eval_shape`: exact), by part:
  parameters, target parameters, optimiser state (keyed by the `agent.network` key whose
  reduction saves the most), the replay buffer (`replay.capacity`), env states
  (`env.num_envs`), the metric history (`train.total_env_steps`). The compiled program holds
  two copies: its input state and its output state (`STATE_COPIES`).
- **working**: buffers that live while one phase of an iteration runs, estimated from the
  config before anything is traced: search trees (batch x (simulations + 1) x actions for
  each array mctx keeps), sequential halving's visit table (Gumbel), the SGD batch and its
  activations, the evaluation envs. Phases run one after another, so the largest counts.
  Once the program is compiled, XLA's `memory_analysis()` replaces them
  (`with_compiled`).
- **host**: host memory spent while the program is built: mctx's Gumbel visit table is built
  as Python tuples while tracing (about `HOST_TABLE_BYTES` per entry), and an allowance for
  XLA's compiler (`COMPILER_BYTES`).
- **save**: with a checkpoint callback (`train_run` always has one), the host copies orbax
  makes of the state while it writes a checkpoint (`CHECKPOINT_COPIES`).

Search sizes are checked before tracing (`check_search`): mctx builds the Gumbel table in
Python while it traces, so an absurd `num_simulations` would otherwise exhaust memory inside
tracing, not at run time.

Available memory: a device's `memory_stats()` (bytes_limit less bytes_in_use) where it
reports one (GPUs, TPUs); the host's otherwise: /proc/meminfo's MemAvailable, lowered by a
cgroup memory limit and by the process's address-space limit (`RLIMIT_AS`) where set.

Accuracy. On the CPU the estimated peak is the host memory the process held when estimated,
plus the compiler allowance, two state copies, the checkpoint copies and XLA's temporary
buffers. For the default preset and MiniPacman, the peak RSS measured (`ru_maxrss`) was within
0.96x to 1.06x of it (tests/test_memory.py checks a factor of 2 both ways;
benchmarks/RESULTS.md has the figures). Before compiling, the working buffers are a coarse
estimate from the config, sized to catch absurd values, not to predict the last megabyte.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import resource
from collections.abc import Callable, Iterable
from typing import Any

import jax

from jaxmb import configlib
from jaxmb.configlib import ConfigError

__all__ = [
    "Available",
    "Estimate",
    "Part",
    "available",
    "check",
    "check_compiled",
    "check_search",
    "estimate",
    "format_bytes",
    "measured_peak",
    "with_compiled",
]

#: Copies of the train state the compiled program holds: its input and its output
#: (`train_run` does not donate the input).
STATE_COPIES = 2
#: A search's working memory over its tree's arrays: XLA's temporaries for one search were
#: 1.06x to 1.12x of the tree (the default preset and MiniPacman, 200 simulations, PUCT and
#: Gumbel), and the out-of-memory error of 1e8 evaluation envs asked for 1.22x (680 GB).
TREE_FACTOR = 1.25
#: Host bytes per entry of mctx's sequential-halving table while it is built (Python tuples
#: of ints, then `jnp.array` of them: 41 bytes live, 268 at the conversion's peak, measured).
HOST_TABLE_BYTES = 300
#: An allowance for XLA's compiler (host memory): compiling the default preset and
#: MiniPacman raised the peak RSS by 0.7 to 0.9 GB on the CPU.
COMPILER_BYTES = 768 * 2**20
#: Host copies of the state while orbax writes a checkpoint (its host copy and its write
#: buffers): saving MiniPacman's 528 MB state raised the peak RSS by 1.17 GB.
CHECKPOINT_COPIES = 2
#: Activations kept per unit of layer width (`_widths`) and sampled position in an SGD
#: update. Calibrated on XLA's buffers for the SGD update alone (its temporaries plus the
#: sampled batch): the estimate was 1.7x to 2.1x of them for the default preset and
#: MiniPacman at batch sizes 64 to 2048.
ACTIVATION_COPIES = 1

#: Sections whose integer keys may size parameters (see `network_keys`).
NETWORK_SECTIONS = ("agent.network.", "agent.ssl.")
#: Stands for "the `agent.network` key that sizes the parameters the most", resolved only
#: when asked for (`Estimate.key`): it builds the agent once per key.
NETWORK = "agent.network"


@dataclasses.dataclass(frozen=True)
class Part:
    """One contributor: `bytes` over all members (one copy, for a state part)."""

    name: str  # what it is: "replay buffer", "search tree (acting)", ...
    key: str | None  # the config key that sizes it (None: no single key)
    bytes: int
    kind: str  # "state", "working", "host" or "save" (see the module docstring)

    @property
    def counted(self) -> int:
        """Bytes this part adds to the peak (state parts count `STATE_COPIES` times)."""
        return self.bytes * (STATE_COPIES if self.kind == "state" else 1)


@dataclasses.dataclass(frozen=True)
class Available:
    """Memory free for the run, and where."""

    bytes: int
    where: str  # "this host", "this process's address-space limit", "device cuda:0", ...

    def describe(self) -> str:
        if self.where.endswith("limit") or "limit (" in self.where:
            return f"{self.where} leaves {format_bytes(self.bytes)}"
        return f"{self.where} has {format_bytes(self.bytes)} available"


@dataclasses.dataclass(frozen=True)
class Estimate:
    """The estimated peak memory of a run, by part.

    `device_bytes` is what the program's arrays need on the device that runs it (on the CPU,
    the host); `host_bytes` what building it needs on the host. `peak_bytes` is the peak
    to compare with a measurement: on the CPU, the host memory the process held when
    estimated (`baseline_bytes`) plus both; elsewhere the device's.
    """

    parts: tuple[Part, ...]
    members: int
    platform: str  # "cpu", "gpu", "tpu"
    baseline_bytes: int  # host RSS when estimated (the runtime, libraries, Python)
    xla: dict[str, int] | None = None  # compiled.memory_analysis() figures, when known
    network_key: Callable[[], str] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    def by_kind(self, kind: str) -> list[Part]:
        return [p for p in self.parts if p.kind == kind]

    @property
    def state_bytes(self) -> int:
        """One copy of the train state (all members)."""
        return sum(p.bytes for p in self.by_kind("state"))

    @property
    def working_bytes(self) -> int:
        """The largest working part (phases run one after another)."""
        return max((p.bytes for p in self.by_kind("working")), default=0)

    @property
    def device_bytes(self) -> int:
        return STATE_COPIES * self.state_bytes + self.working_bytes

    @property
    def host_bytes(self) -> int:
        """Host memory spent building the program: the compiler, the largest table."""
        host = self.by_kind("host")
        tables = max((p.bytes for p in host if p.key is not None), default=0)
        return sum(p.bytes for p in host if p.key is None) + tables

    @property
    def save_bytes(self) -> int:
        """Host copies of the state while a checkpoint is written."""
        return sum(p.bytes for p in self.by_kind("save"))

    @property
    def peak_bytes(self) -> int:
        if self.platform == "cpu":
            return self.baseline_bytes + self.host_bytes + self.save_bytes + self.device_bytes
        return self.device_bytes

    def key(self, part: Part) -> str | None:
        """The part's config key (the network key resolved)."""
        if part.key == NETWORK:
            return self.network_key() if self.network_key else "agent.network.latent_dim"
        return part.key

    def largest(self, kinds: Iterable[str] = ("state", "working", "host")) -> Part | None:
        """The part with a key that adds the most to the peak (checkpoint copies are left
        out: they are the state's parts again)."""
        parts = [p for p in self.parts if p.kind in kinds and p.key is not None]
        return max(parts, key=lambda p: p.counted, default=None)

    def largest_state(self) -> Part | None:
        return max(self.by_kind("state"), key=lambda p: p.bytes, default=None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures (parts by name; network keys left unresolved)."""
        out: dict[str, Any] = {
            "estimated_peak_bytes": int(self.peak_bytes),
            "estimated_device_bytes": int(self.device_bytes),
            "estimated_host_build_bytes": int(self.host_bytes),
            "estimated_checkpoint_bytes": int(self.save_bytes),
            "baseline_bytes": int(self.baseline_bytes),
            "state_bytes_per_member": int(self.state_bytes // max(self.members, 1)),
            "parts": {
                f"{p.kind}: {p.name}": int(p.bytes)
                for p in sorted(self.parts, key=lambda p: -p.bytes)
            },
        }
        if self.xla is not None:
            out["xla"] = dict(self.xla)
        return out

    def describe(self) -> str:
        """A table of the parts, largest first."""
        lines = [
            f"estimated peak {format_bytes(self.peak_bytes)} ({self.platform}; {self.members} "
            f"member{'s' if self.members != 1 else ''}): state {format_bytes(self.state_bytes)} x "
            f"{STATE_COPIES}, working {format_bytes(self.working_bytes)}, building "
            f"{format_bytes(self.host_bytes)}, saving {format_bytes(self.save_bytes)}, runtime "
            f"{format_bytes(self.baseline_bytes)}"
        ]
        for p in sorted(self.parts, key=lambda p: -p.bytes):
            key = "" if p.key is None else f"  [{p.key}]"
            lines.append(f"  {p.kind:8} {p.name:44} {format_bytes(p.bytes):>10}{key}")
        return "\n".join(lines)


def _needs(name: str) -> str:
    """`name` with its verb: "the replay buffer needs", "the parameters need"."""
    noun = name.split(" (")[0]
    return f"the {name} " + ("need" if noun.endswith("s") and not noun.endswith("ss") else "needs")


def format_bytes(n: float) -> str:
    n = float(n)
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


# ----------------------------------------------------------------------------- available


def _kib_field(path: str, field: str) -> int | None:
    """A `Field:  N kB` line of a /proc file, in bytes."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _meminfo(field: str) -> int | None:
    return _kib_field("/proc/meminfo", field)


def _status(field: str) -> int | None:
    return _kib_field("/proc/self/status", field)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_stat(path: str, field: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == field:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _cgroup_free() -> int | None:
    """Bytes left under this process's cgroup memory limit (v2, then v1), if it has one; the
    inactive page cache, which the kernel reclaims first, counts as free."""
    for root, limit_name, usage_name, cache_name in (
        ("/sys/fs/cgroup", "memory.max", "memory.current", "inactive_file"),
        (
            "/sys/fs/cgroup/memory",
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            "total_inactive_file",
        ),
    ):
        limit = _read_int(os.path.join(root, limit_name))
        usage = _read_int(os.path.join(root, usage_name))
        if limit is not None and usage is not None and limit < 2**60:
            cache = _cgroup_stat(os.path.join(root, "memory.stat"), cache_name)
            return max(limit - usage + cache, 0)
    return None


def host_available() -> Available:
    """The host memory this process may still take: MemAvailable, lowered by a cgroup limit
    and by `RLIMIT_AS` (less the address space already mapped) where they are lower."""
    options = []
    free = _meminfo("MemAvailable")
    if free is not None:
        options.append(Available(free, "this host"))
    cgroup = _cgroup_free()
    if cgroup is not None:
        options.append(Available(cgroup, "this container's memory limit"))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    mapped = _status("VmSize")
    if soft != resource.RLIM_INFINITY and mapped is not None:
        options.append(
            Available(max(soft - mapped, 0), "this process's address-space limit (RLIMIT_AS)")
        )
    if not options:  # not Linux: no figure, no refusal
        return Available(2**62, "this host")
    return min(options, key=lambda a: a.bytes)


def _device_stats(device) -> dict | None:
    try:
        return device.memory_stats()
    except Exception:  # backends without memory stats raise or return None
        return None


def device_available(device=None) -> Available | None:
    """Free memory of `device` (default: the first local one) where it reports its limit."""
    device = device or jax.local_devices()[0]
    stats = _device_stats(device)
    if not stats or "bytes_limit" not in stats:
        return None
    free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return Available(free, f"device {device}")


def available(platform: str | None = None) -> tuple[Available, Available]:
    """(memory for the program's arrays, host memory): on the CPU both are the host's."""
    host = host_available()
    platform = platform or jax.default_backend()
    device = None if platform == "cpu" else device_available()
    if device is not None and jax.local_device_count() > 1:
        device = Available(device.bytes * jax.local_device_count(), "the local devices")
    return (device or host), host


def _rss() -> int:
    rss = _status("VmRSS")
    if rss is None:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return rss


def measured_peak() -> dict[str, Any]:
    """Peak memory measured so far: host RSS (`ru_maxrss`, this process's lifetime) and, where
    the device reports it, its `peak_bytes_in_use`."""
    out: dict[str, Any] = {
        "host_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    }
    stats = _device_stats(jax.local_devices()[0])
    if stats and "peak_bytes_in_use" in stats:
        out["device_peak_bytes"] = int(stats["peak_bytes_in_use"])
    return out


# ----------------------------------------------------------------------------- the estimate


def leaf_bytes(leaf) -> int:
    """Bytes of an array or `ShapeDtypeStruct` (typed PRNG keys: their key data)."""
    dtype = leaf.dtype
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        itemsize = 8  # threefry: 2 x uint32
    else:
        itemsize = dtype.itemsize
    return math.prod(leaf.shape) * itemsize


def tree_bytes(tree) -> int:
    return sum(leaf_bytes(x) for x in jax.tree.leaves(tree))


def _names(path) -> list[str]:
    out = []
    for k in path:
        for attr in ("name", "key", "idx"):
            if hasattr(k, attr):
                out.append(str(getattr(k, attr)))
                break
    return out


_AGENT_PARTS = {
    "params": "parameters",
    "target_params": "target parameters",
    "opt_state": "optimiser state",
}


def _state_part(names: list[str], config) -> tuple[str, str | None]:
    first = names[0] if names else ""
    if first == "agent":  # the agent's state: params, optimiser and whatever else it keeps
        second = names[1] if len(names) > 1 else ""
        return _AGENT_PARTS.get(second, f"agent state ({second})"), NETWORK
    if first == "opponent_params":
        return "opponent parameters", NETWORK
    if first == "replay":
        return "replay buffer", "replay.capacity"
    if first in ("env_state", "obs"):
        return "env states", "env.num_envs"
    if first == "history":
        return "metric history", "train.total_env_steps"
    if first == "reward":
        key = "reward.count.hash_bits" if config.reward.transform == "count" else None
        return "reward transform state", key or "reward.transform"
    return "counters and keys", None


def state_parts(config, state_shapes) -> list[Part]:
    """The train state's bytes by part, from its shapes (`train.state_shapes`), keyed by the
    leaf's path."""
    sizes: dict[tuple[str, str | None], int] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state_shapes)[0]:
        part = _state_part(_names(path), config)
        sizes[part] = sizes.get(part, 0) + leaf_bytes(leaf)
    return [Part(name, key, size, "state") for (name, key), size in sizes.items()]


def _get(config, key: str):
    node = config
    for part in key.split("."):
        node = getattr(node, part)
    return node


@functools.cache
def _default_config():
    from jaxmb.config import Config

    return Config()


def _magnitude(value) -> float:
    if value is None:
        return 0.0
    if isinstance(value, tuple | list):
        return float(sum(value))
    return float(value)


def blame(config, keys: Iterable[str]) -> str:
    """Of the keys that size one product, the one furthest above its default (its value
    over the default's, sums for tuples): the one to lower."""
    keys = list(keys)
    default = _default_config()

    def ratio(key: str) -> float:
        value = _magnitude(_get(config, key))
        if key == "agent.search.num_simulations_test" and _get(config, key) is None:
            value = _magnitude(config.agent.search.num_simulations)
        return value / max(_magnitude(_get(default, key)) or 1.0, 1.0)

    return max(keys, key=ratio)


def _field(config, key: str) -> dataclasses.Field:
    node, f = config, None
    for part in key.split("."):
        f = {x.name: x for x in dataclasses.fields(node)}[part]
        node = getattr(node, part)
    return f


def network_keys(config) -> list[str]:
    """The integer keys (and tuples of integers) of `NETWORK_SECTIONS`: those that may size
    the agent's parameters."""
    keys = []
    for key in configlib.flat_keys(type(config)):
        if not key.startswith(NETWORK_SECTIONS):
            continue
        value = _get(config, key)
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if is_int or (
            isinstance(value, tuple) and value and all(isinstance(v, int) for v in value)
        ):
            keys.append(key)
    return keys


def _lowest(config, key: str):
    """The key's lowest allowed value (its field's `low`, else 1), entry-wise for a tuple."""
    spec = configlib.field_spec(_field(config, key))
    low = 1 if spec is None or spec.low is None else int(spec.low)
    value = _get(config, key)
    return [low] * len(value) if isinstance(value, tuple) else low


def _reads_search(config) -> bool:
    from jaxmb.agents import registry

    return "search" not in registry.spec(config.agent.kind).unread


def _shapes_of_reset(loop) -> tuple[int, int]:
    """Bytes of one env's state and of one observation, from `jax.eval_shape` of the env's
    reset (0, 0 when the env cannot be traced alone)."""
    try:
        obs, state = jax.eval_shape(loop.env.reset, jax.random.key(0), loop.env_params)
    except Exception:  # a host env, or an env whose reset wants more than a key
        return 0, 0
    return tree_bytes(state), tree_bytes(obs)


def _record_bytes(loop) -> int:
    """Bytes of one replay record (one env step), priority included."""
    import jax.numpy as jnp

    from jaxmb.loop.collect import record_template

    space = loop.env.observation_space
    obs = jax.ShapeDtypeStruct((1, *space.shape), space.dtype)
    record = jax.eval_shape(lambda o: record_template(loop.agent, o), obs)
    return tree_bytes(record) + jnp.dtype(jnp.float32).itemsize


@dataclasses.dataclass(frozen=True)
class _Search:
    name: str
    batch: int
    batch_keys: tuple[str, ...]
    simulations: int
    simulations_key: str


def searches(config, num_actions: int, two_player: bool = False) -> list[_Search]:
    """The searches one iteration runs (one member), with the keys that size each."""
    if not _reads_search(config):
        return []
    s, out = config.agent.search, []
    if s.for_acting_train:
        out.append(
            _Search(
                "acting", config.env.num_envs, ("env.num_envs",), s.num_simulations,
                "agent.search.num_simulations",
            )
        )  # fmt: skip
    if config.train.eval_every:
        test_key = (
            "agent.search.num_simulations"
            if s.num_simulations_test is None
            else "agent.search.num_simulations_test"
        )
        if s.for_acting_test:
            out.append(
                _Search(
                    "evaluation", config.env.num_eval_envs, ("env.num_eval_envs",),
                    s.simulations_test, test_key,
                )
            )  # fmt: skip
        if two_player and s.for_acting_train:  # against the previous params: both sides search
            out.append(
                _Search(
                    "evaluation against the previous params", 2 * config.env.num_eval_envs,
                    ("env.num_eval_envs",), s.num_simulations, "agent.search.num_simulations",
                )
            )  # fmt: skip
    if s.for_targets and config.agent.loss.reanalyse_fraction > 0:
        rows = int(round(config.agent.loss.reanalyse_fraction * config.replay.batch_size))
        # The window positions the targets read: 0..K and td..td+K.
        k, td = config.agent.loss.unroll_steps, config.agent.loss.td_steps
        positions = len(set(range(k + 1)) | set(range(td, td + k + 1)))
        if rows:
            out.append(
                _Search(
                    "reanalyse", rows * positions, ("replay.batch_size",), s.num_simulations,
                    "agent.search.num_simulations",
                )
            )  # fmt: skip
    return out


def search_parts(config, num_actions: int, embedding_bytes: int, *, two_player=False):
    """Search trees, Gumbel visit tables and rollout keys of one member, from the config
    alone: nothing is traced."""
    s = config.agent.search
    # mctx.Tree: node_visits, raw_values, node_values, parents, action_from_parent [B, N+1];
    # children_index, _prior_logits, _visits, _rewards, _discounts, _values [B, N+1, A];
    # embeddings [B, N+1, ...]. jaxmb_variants add a depth [B, N+1].
    node = 6 * 4 + 6 * 4 * num_actions + embedding_bytes
    embedding_keys = ["agent.network.latent_dim"] if s.model == "learned" else []
    parts = []
    for search in searches(config, num_actions, two_player):
        nodes = search.batch * (search.simulations + 1)
        parts.append(
            Part(
                f"search tree ({search.name})",
                blame(config, [*search.batch_keys, search.simulations_key, *embedding_keys]),
                int(TREE_FACTOR * nodes * node),
                "working",
            )
        )
        if s.algorithm == "gumbel":
            # jaxmb.search passes mctx at most the number of actions.
            considered = min(s.max_num_considered_actions, num_actions)
            entries = (considered + 1) * search.simulations
            key = blame(config, [search.simulations_key, "agent.search.max_num_considered_actions"])
            name = f"Gumbel visit table ({search.name}"
            parts.append(Part(f"{name})", key, 4 * entries, "working"))
            parts.append(Part(f"{name}; built in Python)", key, HOST_TABLE_BYTES * entries, "host"))
        if s.rollout_horizon and s.rollout_mix:
            # Each recurrent call splits [horizon] keys and carries [B, ...] through the scan.
            size = 8 * s.rollout_horizon + 2 * search.batch * (embedding_bytes + 4 * num_actions)
            parts.append(
                Part(f"rollouts ({search.name})", "agent.search.rollout_horizon", size, "working")
            )
    return parts


def _widths(config, obs_shape: tuple[int, ...], num_actions: int) -> tuple[int, list[str]]:
    """Activation floats per sampled position in an SGD update, and the keys that size them."""
    net = config.agent.network
    image = len(obs_shape) == 3 and net.torso in ("auto", "resnet")
    if image:
        h, w = (obs_shape[0] + 1) // 2, (obs_shape[1] + 1) // 2
        encoder = h * w * net.conv_channels * (2 + 4 * net.num_res_blocks)
        keys = ["agent.network.conv_channels", "agent.network.num_res_blocks"]
    else:
        encoder = 2 * sum(net.hidden_sizes)
        keys = ["agent.network.hidden_sizes"]
    width = (
        encoder
        + 2 * net.latent_dim
        + 2 * sum(net.dynamics_hidden_sizes)
        + num_actions
        + 8 * sum(net.head_hidden_sizes)
        + net.value_support.num_atoms
        + net.reward_support.num_atoms
    )
    if not _reads_search(config):  # a Q head: atoms per action
        width += num_actions * net.value_support.num_atoms
    keys += [
        "agent.network.latent_dim",
        "agent.network.dynamics_hidden_sizes",
        "agent.network.head_hidden_sizes",
        "agent.network.value_support.num_atoms",
        "agent.network.reward_support.num_atoms",
    ]
    return width, keys


def working_parts(config, loop) -> list[Part]:
    """Working buffers of one member, from the config and the env's spaces: nothing of the
    loop is traced (only the env's reset and a replay record's shapes)."""
    num_actions = int(loop.agent.num_actions)
    obs_shape = tuple(loop.env.observation_space.shape)
    record = _record_bytes(loop)
    env_state, obs = _shapes_of_reset(loop)
    net = config.agent.network
    embedding = 4 * net.latent_dim
    if config.agent.search.model == "env":
        embedding = env_state
    parts = search_parts(config, num_actions, embedding, two_player=loop.two_player)
    window = config.agent.loss.unroll_steps + config.agent.loss.td_steps + 1
    width, width_keys = _widths(config, obs_shape, num_actions)
    batch = config.replay.batch_size
    window_keys = ["agent.loss.unroll_steps", "agent.loss.td_steps"]
    parts.append(
        Part(
            "SGD update (batch and activations)",
            blame(config, ["replay.batch_size", *window_keys, *width_keys]),
            batch * window * (record + ACTIVATION_COPIES * 4 * width),
            "working",
        )
    )
    rollout = config.train.rollout_steps * config.env.num_envs
    parts.append(
        Part(
            "collected rollout",
            blame(config, ["train.rollout_steps", "env.num_envs"]),
            2 * rollout * (record + 4 * num_actions) + 4 * config.env.num_envs * width,
            "working",
        )
    )
    if config.train.eval_every:
        copies = 4 if loop.two_player else 2  # reset and stepped states (and both sides)
        parts.append(
            Part(
                "evaluation (envs and activations)",
                "env.num_eval_envs",
                config.env.num_eval_envs * (copies * (env_state + obs) + 4 * width),
                "working",
            )
        )
    return parts


def network_key(config, loop) -> str:
    """The network key that sizes the agent's state the most: the one whose lowest value
    (1, or [1, ...]; 2 atoms; 0 blocks) saves the most bytes. Builds the agent once per key
    (`jax.eval_shape` of its `init`: nothing allocated)."""
    from jaxmb import agents

    key0 = jax.random.key(0)
    full = tree_bytes(jax.eval_shape(loop.agent.init, key0))
    best, saved_most = "agent.network.latent_dim", 0
    for key in network_keys(config):
        value, low = _get(config, key), _lowest(config, key)
        if (list(value) if isinstance(value, tuple) else value) == low:
            continue
        try:
            smaller = configlib.apply_overrides(config, [f"{key}={low}"])
            agent = agents.make(smaller, loop.env, loop.env_params)
            saved = full - tree_bytes(jax.eval_shape(agent.init, key0))
        except Exception:  # a key this agent does not read (kept at its default)
            continue
        if saved > saved_most:
            best, saved_most = key, saved
    return best


def _per_members(parts: list[Part], members: int) -> list[Part]:
    """Working parts of one member, for `members` (host parts are built once)."""
    return [
        Part(p.name, p.key, p.bytes * (members if p.kind == "working" else 1), p.kind)
        for p in parts
    ]


def estimate(
    config,
    loop,
    state_shapes=None,
    *,
    members: int = 1,
    checkpoints: bool = False,
    platform: str | None = None,
) -> Estimate:
    """The estimate for `loop` (a `jaxmb.loop.Loop` of `config`) with `members` members and
    the train state of `state_shapes` (`train.state_shapes(keys)`; None: left out).
    `checkpoints`: the run writes checkpoints, which copy the state to the host
    (`CHECKPOINT_COPIES`)."""
    parts = _per_members(working_parts(config, loop), members)
    if state_shapes is not None:
        state = state_parts(config, state_shapes)
        parts = state + parts
        if checkpoints and state:
            largest = max(state, key=lambda p: p.bytes)
            size = CHECKPOINT_COPIES * sum(p.bytes for p in state)
            parts.append(
                Part("checkpoint writes (host copies of the state)", largest.key, size, "save")
            )
    parts.append(Part("XLA compiler (an allowance)", None, COMPILER_BYTES, "host"))
    return Estimate(
        tuple(parts),
        members=members,
        platform=platform or jax.default_backend(),
        baseline_bytes=_rss(),
        network_key=functools.cache(lambda: network_key(config, loop)),
    )


def with_compiled(est: Estimate, compiled) -> Estimate:
    """`est` with XLA's figures for a compiled program: its temporary buffers (and code) in
    place of the working parts estimated from the config. Unchanged where the backend does
    not report them."""
    try:
        stats = compiled.memory_analysis()
    except Exception:
        stats = None
    if stats is None:
        return est
    xla = {
        name: int(getattr(stats, f"{name}_size_in_bytes", 0) or 0)
        for name in ("argument", "output", "alias", "temp", "generated_code")
    }
    working = est.largest(("working",))
    temp = Part(
        "XLA temporary buffers",
        working.key if working else None,
        xla["temp"] + xla["generated_code"],
        "working",
    )
    parts = tuple(p for p in est.parts if p.kind != "working") + (temp,)
    return dataclasses.replace(est, parts=parts, xla=xla)


# ----------------------------------------------------------------------------- the checks


_SKIP = "set run.memory_check=false to skip this check"


def _error(
    est: Estimate, part: Part, needed: int, free: Available, extra: str = "", one: int = 0
) -> ConfigError:
    """The error naming `part`'s key; `run.num_seeds` when one member (`one` bytes) would
    fit and the members together do not."""
    key = est.key(part)
    amount = format_bytes(part.counted)
    if part.kind == "state":
        amount += (
            f" ({STATE_COPIES} copies of {format_bytes(part.bytes)}: the compiled program's "
            "input and output states)"
        )
    if est.members > 1 and 0 < one <= free.bytes:
        key = "run.num_seeds"
        return ConfigError(
            f"{est.members} members need an estimated {format_bytes(needed)} (one member "
            f"{format_bytes(one)}; {_needs(part.name)} {amount}), "
            f"{free.describe()}; train fewer members at once, or {_SKIP}",
            key,
        )
    return ConfigError(
        f"{_needs(part.name)} {amount}, {free.describe()} (the run needs an estimated "
        f"{format_bytes(needed)} in all{extra}); lower {key}, or {_SKIP}",
        key,
    )


def check(est: Estimate, free: tuple[Available, Available] | None = None) -> Estimate:
    """Raises `ConfigError` naming the key of the largest part when `est` does not fit the
    memory available (`available()`: the device's, and the host's); returns `est`."""
    device, host = free or available(est.platform)
    if est.platform == "cpu" or device is host:
        needed = est.device_bytes + est.host_bytes + est.save_bytes
        if needed > host.bytes:
            part = est.largest()
            one = (est.device_bytes + est.save_bytes) // est.members + est.host_bytes
            if part is not None:
                raise _error(est, part, needed, host, one=one)
        return est
    if est.device_bytes > device.bytes:
        part = est.largest(("state", "working"))
        if part is not None:
            raise _error(est, part, est.device_bytes, device, one=est.device_bytes // est.members)
    if est.host_bytes + est.save_bytes > host.bytes:
        part = est.largest(("host", "save"))
        if part is not None:
            raise _error(est, part, est.host_bytes + est.save_bytes, host, " on the host")
    return est


def check_search(config, loop, *, members: int = 1, platform: str | None = None) -> None:
    """The searches checked from the config before anything is traced (mctx builds its Gumbel
    table in Python while it traces): raises `ConfigError` naming
    `agent.search.num_simulations`, `num_simulations_test`, `env.num_eval_envs`, ... when a
    search tree, its visit table or its rollouts do not fit on their own."""
    num_actions = int(loop.agent.num_actions)
    embedding = 4 * config.agent.network.latent_dim
    if config.agent.search.model == "env":
        embedding = _shapes_of_reset(loop)[0]
    parts = search_parts(config, num_actions, embedding, two_player=loop.two_player)
    parts = _per_members(parts, members)
    parts.append(Part("XLA compiler (an allowance)", None, COMPILER_BYTES, "host"))
    platform = platform or jax.default_backend()
    check(Estimate(tuple(parts), members=members, platform=platform, baseline_bytes=_rss()))


def check_compiled(est: Estimate, compiled) -> Estimate:
    """After compiling, with the state already allocated: whether the program's output state
    and XLA's temporary buffers fit what is left. Returns `with_compiled(est, compiled)`."""
    est = with_compiled(est, compiled)
    if est.xla is None:
        return est
    more = est.xla["output"] - est.xla["alias"] + est.xla["temp"]
    device, host = available(est.platform)
    free = host if est.platform == "cpu" else device
    if more > free.bytes:
        temp = [p for p in est.parts if p.name == "XLA temporary buffers"][0]
        state = est.largest_state()
        part = temp if state is None or temp.bytes >= state.bytes else state
        if part.key is not None:
            raise _error(est, part, more, free, ", the state already allocated")
    return est
