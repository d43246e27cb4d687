"""The agent protocol: everything the loop (`jaxmb.loop`) needs from an agent, and nothing more.

An agent is a Python object that holds its static configuration (networks, search functions,
optimiser) and exposes pure functions over an explicit state pytree:

    agent = jaxmb.agents.make(config, env, env_params)   # by config.agent.kind
    state = agent.init(key)                              # AgentState: params, optimiser, ...
    action, info = agent.act(state, obs, key, training=True, action_mask=mask)
    state, metrics = agent.update(state, batch, key)

Shapes: `B` is a batch of environments (acting) or of sampled windows (learning), `L` the
window length (`agent.window`), `A` the number of actions.

**What replay stores.** Per env step the loop writes one record (shapes below are without the
leading `[envs, steps]` axes). The loop fills the fields in `LOOP_FIELDS` itself:

    obs            [*obs_shape]   the observation acted on
    action         [] int32       the action taken
    reward         [] float32     the env's reward (raw; reward transforms apply at sampling)
    terminated     [] bool        the MDP ended after this step (no bootstrap)
    truncated      [] bool        a time limit cut the episode after this step
    action_mask    [A] bool       legal actions at `obs`
    final_value    [] float32     `agent.bootstrap_value` of the pre-reset observation (the
                                  truncation bootstrap; meaningful where `truncated`)

and the agent's own fields, `agent.record_spec()`, from the `info` dict `act` returns under the
same names (for MuZero: `policy [A]`, the search's improved policy, and `value []`, the value
when acting; the Q-learning baseline stores none).

**What learning sees.** `update(state, batch, key)` gets `batch`, a dict of the spec's fields
with leading `[B, L]`, plus `weight [B]` (importance weights of prioritized replay; ones
otherwise). The rewards in `batch["reward"]` are those of the run's reward transform
(`jaxmb.rewards`): the env's own reward unless a transform mixes in intrinsic rewards.

**Metrics.** `update` returns a flat dict of scalars: `loss`, `loss/<term>` for each active
loss term, `grad_norm`, anything else the agent reports, and optionally `priority [B]`
(new priorities for the sampled windows, read by prioritized replay and not logged). The loop
averages the scalars over an iteration's updates. The NaN guard checks `agent.guarded_metrics`
(a non-finite value there stops learning). `acting_metrics(infos)` reduces the `info` dicts of
one iteration's rollout (leaves `[T, N, ...]`) to scalars, e.g. MuZero's simulation counts.

**Latents.** An agent that can explore with a latent-based reward transform (`disagreement`)
also has `represent(params, obs)`: latents `[..., D]` of observations `[..., *obs_shape]`
(MuZero's representation; the Q-learning baseline's encoder).

**Parameters by part.** `agent.parts` maps each transferable part (Walker et al. 2023's
decomposition: `encoder`, `prior_heads`, `model`, `dynamics_heads`, or an agent's own such as
`q_head`) to the top-level groups of `state.params["params"]` it holds. `agent.init_from`
(see `jaxmb.transfer`) copies the named parts from another run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import jax

#: The record fields the loop fills itself (see the module docstring).
LOOP_FIELDS = ("obs", "action", "reward", "terminated", "truncated", "action_mask", "final_value")


@runtime_checkable
class Agent(Protocol):
    """What the loop relies on. See the module docstring for the shapes of each piece."""

    #: The registry name (`agent.kind`).
    kind: ClassVar[str]
    #: Discrete actions.
    num_actions: int
    #: Consecutive steps a sampled window spans.
    window: int
    #: Part name -> top-level parameter groups it holds (transfer by part).
    parts: Mapping[str, tuple[str, ...]]
    #: Metrics of `update` whose non-finite value stops learning, in a fixed order.
    guarded_metrics: tuple[str, ...]

    def record_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        """The agent's own fields of a replay record (beyond `LOOP_FIELDS`) and their shapes,
        for one step; `act`'s info holds each of them with a leading `[B]`."""
        ...

    def init(self, key: jax.Array) -> Any:
        """A fresh agent state (a pytree with `.params`, `{"params": {group: ...}}`)."""
        ...

    def act(
        self,
        state: Any,
        obs: jax.Array,
        key: jax.Array,
        *,
        training: bool,
        action_mask: jax.Array | None = None,
        env_state: Any = None,
    ) -> tuple[jax.Array, dict]:
        """Actions `[B]` for observations `[B, ...]`, and an info dict of `[B, ...]` arrays
        holding at least the agent's record fields. `training` is static: acting to collect
        data, or to evaluate. `env_state` is the envs' states (for search in the env)."""
        ...

    def bootstrap_value(self, state: Any, obs: jax.Array) -> jax.Array:
        """The value `[B]` that bootstraps a truncated episode at observations `[B, ...]`."""
        ...

    def acting_metrics(self, infos: dict) -> dict[str, jax.Array]:
        """Scalar metrics of one iteration's acting, from `act`'s infos `[T, N, ...]`."""
        ...

    def update(self, state: Any, batch: dict, key: jax.Array) -> tuple[Any, dict]:
        """One SGD step on a batch of windows; returns the new state and metrics."""
        ...
