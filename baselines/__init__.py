"""Model-free baselines on jaxmb's env protocol and loop, each a registered agent kind.

- `q_learning` (`jaxmb.baselines.q_learning.QLearning`): the controlled model-free baseline of
  MuZero (Anand et al. 2022): MuZero's encoder, replay windows, n-step targets, optimiser and
  target network, with a distributional Q head instead of a model and search. Preset:
  `configs/q_learning/cartpole.yaml`.

Nothing is imported here: the agent registry (`jaxmb.agents.registry`) imports a baseline's
module the first time a config names its kind, so the core never loads `jaxmb.baselines`.
"""
