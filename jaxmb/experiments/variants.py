"""Where search is used: the named planning variants of Hamrick et al. (2021).

Each variant is a set of `agent.search` switches (and the reanalyse fraction they need).
The paper's appendix could not be consulted here, so each row is jaxmb's precise reading of
its description:

| variant           | targets | acting, training | acting, test | targets come from           |
| ---               | ---     | ---              | ---          | ---                         |
| `one_step`        | model   | prior            | prior        | one-step lookahead, model   |
| `learn`           | search  | prior            | prior        | search (reanalyse)          |
| `data`            | model   | search           | prior        | one-step lookahead, model   |
| `learn_data`      | search  | search           | prior        | search (reanalyse)          |
| `learn_data_eval` | search  | search           | search       | search: vanilla MuZero      |

(`targets` is `agent.search.for_targets`, the acting columns `for_acting_train` and
`for_acting_test`.)

- **targets from search** (`for_targets` on): the policy target is the search's improved
  policy (Gumbel's completed-Q policy or the visit distribution) and the value target the
  n-step return bootstrapped with the search's root value, both from a fresh search with the
  target network on the replayed observations (`agent.loss.reanalyse_fraction`, 1 here, so
  that every Learn variant computes its targets the same way, whatever acted).
- **targets without search** (`for_targets` off): for each legal action one step of the
  learned model (target network) gives `Q(s, a) = r(s, a) + discount * v(s')`; the policy
  target is `softmax(Q / agent.search.one_step_temperature)` (or Gumbel's completed-Q
  improvement, `agent.search.one_step_target=completed_q`), and the value target the n-step
  return bootstrapped with the target network's value head.
- **acting without search**: actions are sampled from the policy network's prior while
  training; at test time they are its argmax (`agent.search.greedy_eval`, else sampled).

`python -m jaxmb train configs/muzero/cartpole.yaml --variant one_step` trains one variant;
`python -m jaxmb experiment planning` trains them all (see `jaxmb.experiments.planning`).
"""

from __future__ import annotations

import difflib

from jaxmb.config import ConfigError

#: name -> (for_targets, for_acting_train, for_acting_test)
SWITCHES: dict[str, tuple[bool, bool, bool]] = {
    "one_step": (False, False, False),
    "learn": (True, False, False),
    "data": (False, True, False),
    "learn_data": (True, True, False),
    "learn_data_eval": (True, True, True),
}

#: Labels for tables and plots, as the paper names the variants.
LABELS = {
    "one_step": "One-Step",
    "learn": "Learn",
    "data": "Data",
    "learn_data": "Learn+Data",
    "learn_data_eval": "Learn+Data+Eval",
}


def variant_overrides(name: str, *, reanalyse_fraction: float = 1.0) -> list[str]:
    """The dotted config overrides of a named variant.

    Args:
      name: a key of `SWITCHES`.
      reanalyse_fraction: the share of each batch reanalysed by the variants that take their
        targets from search while also acting with search (`learn_data`, `learn_data_eval`);
        the rest of their batch uses the search policies stored when acting. `learn` always
        reanalyses everything (its acting policy is the prior, not a search policy).

    Raises:
      ConfigError: for an unknown name, naming the closest one.
    """
    if name not in SWITCHES:
        close = difflib.get_close_matches(name, SWITCHES, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; valid: {', '.join(SWITCHES)}"
        raise ConfigError(f"unknown planning variant '{name}'{hint}", "variant")
    targets, acting_train, acting_test = SWITCHES[name]
    fraction = 0.0 if not targets else (1.0 if not acting_train else reanalyse_fraction)
    overrides = [
        f"agent.search.for_targets={str(targets).lower()}",
        f"agent.search.for_acting_train={str(acting_train).lower()}",
        f"agent.search.for_acting_test={str(acting_test).lower()}",
        f"agent.loss.reanalyse_fraction={fraction}",
    ]
    if not targets:
        # Stored values are search root values when acting searched: no search in targets.
        overrides.append("agent.loss.bootstrap=target_network")
    return overrides
