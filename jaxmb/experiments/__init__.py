"""Experiment runners: they build configs, train them (vmapped over seeds) and write tables
and plots; they never fork the loop.

- `variants`: the named planning variants (One-Step, Learn, Data, Learn+Data, Learn+Data+Eval).
- `planning`: `python -m jaxmb experiment planning` (Hamrick et al. 2021).
"""
