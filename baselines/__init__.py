"""Model-free baselines (PPO, DQN-family) on jaxmb's env protocol and loop.

Nothing is exported yet: the baselines arrive with their own issue. The package exists so that
`jaxmb.baselines` is importable and installed under the `jaxmb` namespace.
"""
