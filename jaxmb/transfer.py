"""Transfer by part: start a run from parts of another run's parameters.

    agent:
      init_from: {run: runs/explore, parts: [encoder, model, dynamics_heads]}

Parts follow Walker et al. 2023's decomposition of a MuZero agent (`agent.parts` maps each to
the network's parameter groups):

    encoder         the observation encoder                     (group `encoder`)
    prior_heads     the policy and value heads                  (`policy`, `value`)
    model           the dynamics core                           (`dynamics`)
    dynamics_heads  the reward and termination heads            (`reward`, `terminal`)
    q_head          the Q-learning baseline's Q head            (`q`)

The named parts are copied bit for bit from the source run's latest checkpoint into both the
online and the target parameters; every other part is initialised fresh, exactly as without
transfer (same key, same values), and the optimiser state is always fresh. The source is read
when a fresh run is initialised, never when a run resumes: a resumed fine-tuning run restores
its own checkpoint and does not need the source any more.

Seeds: member i of the new run takes member i of the source run; a source with one member
gives it to every member; a single-seed program (`make_train` without `num_seeds`) takes the
source's member 0.

Per member: `mixed_source` builds a source in which each member of the new run names its own
source run, member and parts (or none: from scratch), for experiments that train several
transfer sets in one program (`make_train(..., source=...)`, `train_run(..., source=...)`).
Its `mask` says, per group, which members take the source's values.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmb.configlib import ConfigError


@dataclasses.dataclass(frozen=True)
class Source:
    """Parameter groups read from a source run: `{"params": {group: tree}}`, leaves
    `[members, ...]` (numpy)."""

    run: str
    parts: tuple[str, ...]
    params: dict
    members: int
    # Group -> bool `[members]`: the members that take the source's values (None: all).
    mask: dict | None = None

    def for_members(self, num_members: int) -> dict:
        """The groups with a leading `[num_members]` axis (see the module docstring), and
        the mask under `"mask"` where the source has one."""
        tree = self.params if self.mask is None else {**self.params, "mask": self.mask}
        if self.members == num_members:
            return tree
        if self.members == 1 or num_members == 1:
            return jax.tree.map(lambda x: np.broadcast_to(x[:1], (num_members, *x.shape[1:])), tree)
        raise ConfigError(
            f"{self.run} has {self.members} members and this run {num_members}: give the new "
            "run as many seeds as the source, or a source of one member",
            "agent.init_from.run",
        )


def _restore_agent_params(run: str) -> dict:
    """The saved `agent.params` of a run's latest checkpoint, as nested dicts of numpy."""
    from jaxmb.checkpoint import read_saved  # orbax: imported only when a run transfers

    try:
        _, saved = read_saved(os.path.join(run, "checkpoints"))
    except FileNotFoundError as err:
        raise ConfigError(
            f"{run} holds no checkpoint to transfer from", "agent.init_from.run"
        ) from err
    return jax.tree.map(np.asarray, saved["agent"]["params"])


def load_source(config: Any, agent: Any) -> Source | None:
    """The parts `config.agent.init_from` names, read from the source run; None without one.

    Raises:
      ConfigError: naming `agent.init_from.run` (no checkpoint) or `agent.init_from.parts` (a
        part the source lacks, or of another shape: the message gives the part, the run and
        both shapes).
    """
    init_from = config.agent.init_from
    if not init_from.run:
        return None
    groups, members = _read_groups(init_from.run, init_from.parts, agent)
    return Source(init_from.run, tuple(init_from.parts), {"params": groups}, members)


def _read_groups(run: str, parts, agent: Any) -> tuple[dict, int]:
    """`({group: tree [members, ...]}, members)` of `parts` in `run`'s latest checkpoint,
    checked against `agent`'s fresh parameters (see `load_source` for the errors)."""
    saved = _restore_agent_params(run)
    fresh = jax.eval_shape(agent.init, jax.random.key(0)).params["params"]
    groups = {}
    members = None
    for part in parts:
        if part not in agent.parts:
            raise ConfigError(
                f"agent.kind={agent.kind} has no part '{part}' (its parts: "
                f"{', '.join(agent.parts)})",
                "agent.init_from.parts",
            )
        for group in agent.parts[part]:
            if group not in saved.get("params", {}):
                raise ConfigError(
                    f"part '{part}' needs the parameter group '{group}', which {run} "
                    f"does not have (its groups: {', '.join(sorted(saved.get('params', {})))})",
                    "agent.init_from.parts",
                )
            tree = saved["params"][group]
            want = jax.tree_util.tree_flatten_with_path(fresh[group])[0]
            have = jax.tree_util.tree_flatten_with_path(tree)[0]
            have_shapes = {jax.tree_util.keystr(p): x.shape[1:] for p, x in have}
            want_shapes = {jax.tree_util.keystr(p): x.shape for p, x in want}
            if have_shapes != want_shapes:
                raise ConfigError(
                    f"part '{part}': {run} holds '{group}' with shapes {have_shapes}, "
                    f"this run's agent needs {want_shapes}",
                    "agent.init_from.parts",
                )
            members = have[0][1].shape[0] if have else members
            groups[group] = jax.tree.map(lambda x, f: np.asarray(x, f.dtype), tree, fresh[group])
    return groups, members or 1


def mixed_source(members, agent: Any) -> Source:
    """A source giving each member of the new run its own origin.

    Args:
      members: one `(run, member, parts)` per member of the new run: the source run's
        directory, which of its members, and the parts to copy; `(None, 0, ())` starts that
        member from scratch.
      agent: the new run's agent (for the parts' groups and the shape checks).

    Returns:
      A `Source` of `len(members)` members whose `mask[group]` is True for the members that
      copy `group`; the others keep their fresh values (the values under the mask's False
      entries are placeholders).
    """
    runs = {run for run, _, parts in members if run and parts}
    wanted = {part for run, _, parts in members if run for part in parts}
    loaded = {}
    for run in sorted(runs):
        parts = [p for p in agent.parts if p in wanted]
        loaded[run] = _read_groups(run, parts, agent)
    groups = sorted({g for run, _, parts in members if run for p in parts for g in agent.parts[p]})
    stacked, mask = {}, {}
    for group in groups:
        rows, flags = [], []
        like = next(loaded[run][0][group] for run in sorted(runs) if group in loaded[run][0])
        for run, member, parts in members:
            takes = bool(run) and any(group in agent.parts[p] for p in parts)
            if takes:
                tree, count = loaded[run]
                if not 0 <= member < count:
                    raise ConfigError(
                        f"{run} has {count} members; member {member} was asked for",
                        "agent.init_from.run",
                    )
                rows.append(jax.tree.map(lambda x, m=member: x[m], tree[group]))
            else:
                rows.append(jax.tree.map(lambda x: np.zeros_like(x[0]), like))
            flags.append(takes)
        stacked[group] = jax.tree.map(lambda *xs: np.stack(xs), *rows)
        mask[group] = np.asarray(flags)
    label = ", ".join(sorted(runs)) or "(none)"
    return Source(label, tuple(sorted(wanted)), {"params": stacked}, len(members), mask)


def apply(agent_state: Any, source_params: dict) -> Any:
    """`agent_state` with the groups of `source_params` (one member's, no seed axis) in its
    online and target parameters; where `source_params` has a `"mask"` (`mixed_source`), a
    group whose mask is False keeps its fresh values."""
    mask = source_params.get("mask", {})

    def merged(params: dict) -> dict:
        inner = dict(params["params"])
        for group, tree in source_params["params"].items():
            if group in mask:
                inner[group] = jax.tree.map(
                    lambda src, fresh, g=group: jnp.where(mask[g], src, fresh), tree, inner[group]
                )
            else:
                inner[group] = jax.tree.map(jnp.asarray, tree)
        return {**params, "params": inner}

    changes = {"params": merged(agent_state.params)}
    if hasattr(agent_state, "target_params"):
        changes["target_params"] = merged(agent_state.target_params)
    return agent_state.replace(**changes)
