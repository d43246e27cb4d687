"""Command line: `python -m jaxmb {train,sweep,eval,experiment,config,presets} ...`.

python -m jaxmb train                                   # the default: MuZero on CartPole-v1
python -m jaxmb train muzero/acrobot agent.search.num_simulations=50 --seeds 4   # a preset
python -m jaxmb train configs/muzero/acrobot.yaml       # the same, by path (or your own YAML)
python -m jaxmb sweep muzero/cartpole --seeds 3 \
    --grid agent.optim.learning_rate=1e-3,3e-3 --grid agent.loss.discount=0.97,0.99
python -m jaxmb sweep muzero/cartpole --grid agent.network.latent_dim=32,64   # 2 compiles
python -m jaxmb train ... --coordinator host0:1234 --num-processes 2 --process-id 0   # on host 0
python -m jaxmb train muzero/cartpole --variant one_step   # a planning variant
python -m jaxmb experiment planning --env gymnax:CartPole-v1 --seeds 5
python -m jaxmb experiment planning planning_cartpole_cpu   # the preset experiments/...
python -m jaxmb experiment generalisation --env jaxmb:MiniPacman-v0 --levels 10,100,500,0 \
    --ssl none,reconstruction,spr,contrastive --seeds 5   # SSL and unseen levels
python -m jaxmb eval runs/<name> --episodes 32
python -m jaxmb eval runs/<go run> --episodes 128 --simulations 64 --env-param no_pass_before=0
python -m jaxmb config                                  # every key, its default and help
python -m jaxmb presets                                 # every preset name, what it is
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def _split_overrides(items: list[str]) -> tuple[str | None, list[str]]:
    """The first positional may be a preset (a name or a YAML path); the rest are dotted
    overrides."""
    if items and "=" not in items[0]:
        return items[0], items[1:]
    return None, items


def _join_processes(args: argparse.Namespace) -> None:
    """`jax.distributed.initialize` for a multi-process run, before JAX touches a device."""
    from jaxmb import distributed

    distributed.initialize(args.coordinator, args.num_processes, args.process_id)


def _train(args: argparse.Namespace) -> int:
    from jaxmb import config as config_lib
    from jaxmb.run import train_run

    _join_processes(args)

    path, overrides = _split_overrides(args.items)
    if args.variant is not None:
        from jaxmb.experiments.variants import variant_overrides

        overrides = [*variant_overrides(args.variant), *overrides]
    if args.seeds is not None:
        overrides.append(f"run.num_seeds={args.seeds}")
    if args.name is not None:
        overrides.append(f"run.name={args.name}")
    config = config_lib.load(path, overrides)
    result = train_run(config, quiet=args.quiet)
    if "learning_curve" not in result.summary:  # not process 0 of a multi-process run
        print(f"done; process 0 wrote {result.run_dir}")
        return 0
    s = result.summary
    print(f"run directory:      {result.run_dir}")
    if s["final_eval_return_mean"] is None:
        print("final greedy eval:  not evaluated (train.eval_every=0)")
    else:
        per_seed = ", ".join(f"{r:.1f}" for r in s["final_eval_return"])
        print(f"final greedy eval:  {s['final_eval_return_mean']:.1f} (per seed: {per_seed})")
    if s["already_trained"]:
        print(f"env steps/seed:     {s['env_steps_per_seed']} (already trained: nothing ran)")
    else:
        print(
            f"env steps/seed:     {s['env_steps_per_seed']} in {s['run_seconds']:.1f} s "
            f"(+{s['compile_seconds']:.1f} s compile), {s['env_steps_per_second']:.0f} steps/s"
        )
    print(f"learning curve:     {s['learning_curve']}")
    return 0


def _grid_value(raw: str) -> Any:
    """A grid value as an override reads it: an int, a float (`1e-3` too), else YAML."""
    import yaml

    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return yaml.safe_load(raw)


def _split_values(raw: str) -> list[str]:
    """`a,b` -> [a, b]; commas inside brackets or braces stay (`[64,64],[128]`)."""
    values, depth, start = [], 0, 0
    for i, char in enumerate(raw):
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            values.append(raw[start:i])
            start = i + 1
    values.append(raw[start:])
    return [v.strip() for v in values]


def _parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """`key=v1,v2,...` strings -> {key: [v1, v2, ...]}."""
    from jaxmb.config import ConfigError

    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        values = _split_values(raw)
        if not sep or not key or not raw or not all(values):
            raise ConfigError(f"--grid takes key=v1,v2,..., got {item!r}")
        grid[key.strip()] = [_grid_value(v) for v in values]
    return grid


def _sweep(args: argparse.Namespace) -> int:
    from jaxmb import config as config_lib
    from jaxmb.sweeps import sweep

    path, overrides = _split_overrides(args.items)
    config = config_lib.load(path, overrides)
    _join_processes(args)
    result = sweep(
        config, seeds=args.seeds, grid=_parse_grid(args.grid), name=args.name, quiet=args.quiet
    )
    if not result.points:  # not process 0 of a multi-process run
        print(f"done; process 0 wrote {result.sweep_dir}")
        return 0
    print(f"sweep directory:    {result.sweep_dir}")
    for point in result.points:
        if point["mean"] is None:
            shown = "not evaluated"
        elif point["ci95"] is None:
            shown = f"{point['mean']:.1f}"
        else:
            low, high = point["ci95"]
            shown = f"{point['mean']:.1f} (95% interval {low:.1f} to {high:.1f})"
        print(f"  {point['label']:<40} final greedy eval {shown}")
    s = result.summary
    if s["already_trained"]:
        print(f"{s['num_members']} members, already trained: nothing ran")
    else:
        print(
            f"{s['num_members']} members in {s['run_seconds']:.1f} s "
            f"(+{s['compile_seconds']:.1f} s compile), {s['env_steps_per_second']:.0f} env steps/s"
        )
    return 0


def _eval(args: argparse.Namespace) -> int:
    import yaml

    from jaxmb.config import ConfigError
    from jaxmb.evaluate import evaluate_run

    env_params = {}
    for item in args.env_param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env-param wants key=value, got {item!r}", "--env-param")
        env_params[key] = yaml.safe_load(value)
    result = evaluate_run(
        args.run_dir,
        episodes=args.episodes,
        seed=args.seed,
        budget=args.simulations,
        env_params=env_params,
    )
    if "win_rate" in result:
        for i, (outcome, rate) in enumerate(
            zip(result["per_seed"], result["win_rate_per_seed"], strict=True)
        ):
            print(
                f"seed {i}: win rate {rate:.3f} against a uniform random legal player over "
                f"{args.episodes} games (mean outcome {outcome:+.3f})"
            )
        print(f"mean win rate: {result['win_rate']:.3f}")
        return 0
    for i, value in enumerate(result["per_seed"]):
        print(f"seed {i}: mean greedy return {value:.1f} over {args.episodes} episodes")
    print(f"mean: {result['mean']:.1f}")
    return 0


def _with_env(env_id: str | None, changes: dict, overrides: list[str]) -> list[str]:
    """An experiment's `--env ID`: the env's `muzero/` preset becomes the base (set in
    `changes`) and `env.id=ID` the first override. Returns the overrides."""
    if env_id is None:
        return overrides
    from jaxmb.experiments import planning

    changes["base"] = planning.preset_for_env(env_id)
    return [f"env.id={env_id}", *overrides]


def _experiment_spec(cls, path, changes: dict, overrides: list[str]):
    """An experiment's spec `cls`: the preset YAML at `path` (if any), the command line's
    `changes` over it (those given), YAML lists as tuples, then `overrides` appended."""
    import dataclasses

    import yaml

    from jaxmb import presets

    if path is not None:
        with open(presets.resolve(path, group="experiments"), encoding="utf-8") as f:
            given = {k: v for k, v in changes.items() if v is not None}
            changes = {**yaml.safe_load(f), **given}
    # Options not given are None; a preset's false or 0 is a value (random_ablation: false).
    changes = {
        k: tuple(v) if isinstance(v, list) else v for k, v in changes.items() if v is not None
    }
    spec = cls(**changes)
    if overrides:
        spec = dataclasses.replace(spec, overrides=(*spec.overrides, *overrides))
    return spec


def _generalisation(args: argparse.Namespace, path, overrides) -> int:
    from jaxmb.experiments import generalisation

    changes = {"seeds": args.seeds, "levels": args.levels}
    overrides = _with_env(args.env, changes, overrides)
    spec = _experiment_spec(generalisation.GeneralisationSpec, path, changes, overrides)
    summary = generalisation.run_generalisation(
        spec, name=args.name, root=args.root, quiet=args.quiet
    )
    print(f"experiment directory: {summary['dir']}")
    for group, stat in summary["results"].items():
        print(f"  {group:<40} {stat['mean']:8.2f}")
    print(f"  plot: {summary['plots']['generalisation']}")
    return 0


def _ints(raw: str | None, key: str) -> tuple[int, ...] | None:
    from jaxmb.config import ConfigError

    if raw is None:
        return None
    try:
        return tuple(int(v) for v in raw.split(","))
    except ValueError as err:
        raise ConfigError(f"takes integers separated by commas, got {raw!r}", key) from err


def _ssl_generalisation(args: argparse.Namespace, path, overrides) -> int:
    from jaxmb.experiments import ssl_generalisation as study

    changes: dict[str, Any] = {"seeds": args.seeds, "levels": _ints(args.levels, "--levels")}
    if args.ssl:
        changes["ssl"] = tuple(k.strip() for k in args.ssl.split(","))
    overrides = _with_env(args.env, changes, overrides)
    if args.quick:
        changes = {**study.QUICK, **{k: v for k, v in changes.items() if v}}
    spec = _experiment_spec(study.SSLGeneralisationSpec, path, changes, overrides)
    summary = study.run_ssl_generalisation(spec, name=args.name, root=args.root, quiet=args.quiet)
    print(f"experiment directory: {summary['dir']}")
    for group, stat in summary["results"].items():
        test, probe = stat["test_return"]["mean"], stat["probe_r2"]["mean"]
        shown = "-" if test is None else f"{test:.2f}"
        r2 = "" if probe is None else f", probe R^2 {probe:.2f}"
        print(f"  {group:<30} unseen-level return {shown}{r2}")
    for name, plot in summary["plots"].items():
        print(f"  plot {name}: {plot}")
    return 0


def _transfer(args: argparse.Namespace, path, overrides) -> int:
    from jaxmb.experiments import transfer as study

    changes: dict[str, Any] = {"seeds": args.seeds, "transform": args.transform}
    overrides = _with_env(args.env, changes, overrides)
    if args.quick:
        changes = {**study.QUICK, **{k: v for k, v in changes.items() if v}}
    spec = _experiment_spec(study.TransferSpec, path, changes, overrides)
    summary = study.run_transfer(spec, name=args.name, root=args.root, quiet=args.quiet)
    print(f"experiment directory: {summary['dir']}")
    for group, stat in summary["finetune"].items():
        final, crafter = stat["final_return"]["mean"], stat["crafter_score"]["mean"]
        shown = "-" if final is None else f"{final:.2f}"
        score = "" if crafter is None else f", Crafter score {crafter:.2f}"
        print(f"  {group:<32} final return {shown}{score}")
    for name, plot in summary["plots"].items():
        print(f"  plot {name}: {plot}")
    return 0


def _experiment(args: argparse.Namespace) -> int:
    from jaxmb.experiments import planning

    path, overrides = _split_overrides(args.items)
    if args.which == "transfer":
        return _transfer(args, path, overrides)
    if args.which == "generalisation":
        return _ssl_generalisation(args, path, overrides)
    if args.which == "planning-generalisation":
        if args.levels is not None:
            args.levels = _ints(args.levels, "--levels")[0]
        return _generalisation(args, path, overrides)
    changes = {"seeds": args.seeds}
    overrides = _with_env(args.env, changes, overrides)
    if args.quick:
        changes.update(planning.QUICK)
    spec = planning.load_spec(path, **changes)
    if overrides:
        spec = planning.dataclasses.replace(spec, overrides=(*spec.overrides, *overrides))
    summary = planning.run_planning(spec, name=args.name, root=args.root, quiet=args.quiet)
    print(f"experiment directory: {summary['dir']}")
    for variant, stat in summary["variants"].items():
        interval = (
            "" if stat["ci95"] is None else " (95% CI {:.1f} to {:.1f})".format(*stat["ci95"])
        )
        rate = f", win rate {stat['win_rate']:.2f}" if "win_rate" in stat else ""
        print(f"  {variant:<16} {stat['mean']:8.1f}{interval}{rate}")
    for name, path in summary["plots"].items():
        print(f"  plot {name}: {path}")
    return 0


def _presets(args: argparse.Namespace) -> int:
    from jaxmb import presets
    from jaxmb.config import ConfigError

    groups = sorted({name.split("/")[0] for name in presets.names()})
    if args.group is not None and args.group not in groups:
        raise ConfigError(f"no preset folder {args.group!r}; the folders: {', '.join(groups)}")
    print(presets.table(args.group))
    print(
        f"\nfiles in {presets.root()}. Load one by name: `python -m jaxmb train muzero/cartpole`"
        ', `jaxmb.config.load("muzero/cartpole")`; an experiment: `python -m jaxmb experiment '
        "planning planning_cartpole_cpu`."
    )
    return 0


def _config(args: argparse.Namespace) -> int:
    from jaxmb import configlib
    from jaxmb.config import Config

    print(configlib.describe(Config))
    return 0


def _add_process_options(command: argparse.ArgumentParser) -> None:
    group = command.add_argument_group(
        "multi-host", "one process per host, all started with the same arguments but --process-id"
    )
    group.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address")
    group.add_argument("--num-processes", type=int, help="processes in the run")
    group.add_argument("--process-id", type=int, help="this process's index, from 0")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jaxmb",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train an agent (agent.kind); writes runs/<name>/")
    train.add_argument("items", nargs="*", help="[preset name or YAML path] key=value overrides")
    train.add_argument("--seeds", type=int, help="seeds trained together (run.num_seeds)")
    train.add_argument("--name", help="run directory name (run.name)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--variant",
        help="a planning variant (one_step, learn, data, learn_data, learn_data_eval): its "
        "agent.search switches, applied before the other overrides",
    )
    train.set_defaults(func=_train)
    _add_process_options(train)
    sw = sub.add_parser(
        "sweep", help="train a grid of hyperparameters x seeds (one compile per structural point)"
    )
    sw.add_argument(
        "items", nargs="*", help="[preset name or YAML path] key=value overrides of the base"
    )
    sw.add_argument("--seeds", type=int, default=1, help="seeds per grid point")
    sw.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a config key and its values (repeat for a product grid); sweepable keys share "
        "one compile, structural ones (network sizes, num_simulations, ...) compile once per "
        "value: agent.network.latent_dim=32,64 or agent.network.hidden_sizes=[64,64],[128]",
    )
    sw.add_argument("--name", help="sweep directory name")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=_sweep)
    _add_process_options(sw)
    ev = sub.add_parser("eval", help="greedy evaluation of a run's latest checkpoint")
    ev.add_argument("run_dir")
    ev.add_argument("--episodes", type=int, default=32)
    ev.add_argument("--seed", type=int, default=12345)
    ev.add_argument(
        "--simulations",
        type=int,
        help="test-time search budget (0: act from the prior); default: the run's",
    )
    ev.add_argument(
        "--env-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="env param for the evaluation envs, over the run's (repeatable), e.g. "
        "no_pass_before=0 to play Go under standard rules",
    )
    ev.set_defaults(func=_eval)
    ex = sub.add_parser(
        "experiment",
        help="run a research experiment (planning, SSL and generalisation, exploration and "
        "transfer)",
    )
    ex.add_argument(
        "which",
        choices=["planning", "planning-generalisation", "generalisation", "transfer"],
        help="the experiment: planning (Hamrick et al. 2021), planning-generalisation (its "
        "section 6), generalisation (self-supervision and unseen levels, Anand et al. 2022), "
        "transfer (exploration pre-training, then transfer by part; Walker et al. 2023)",
    )
    ex.add_argument(
        "--transform",
        help="transfer: the intrinsic reward of pre-training (rnd, disagreement, count)",
    )
    ex.add_argument(
        "--levels",
        help="planning-generalisation: training levels (an int); generalisation: a list of "
        "them, 0 meaning every level (10,100,500,0)",
    )
    ex.add_argument(
        "--ssl",
        help="generalisation: the kinds compared, from none,reconstruction,spr,contrastive",
    )
    ex.add_argument(
        "items",
        nargs="*",
        help="[experiment preset (experiments/<name>, the folder may be left out) or YAML "
        "path] key=value overrides of the base",
    )
    ex.add_argument("--env", help="env id; its muzero/ preset becomes the base")
    ex.add_argument("--seeds", type=int, help="seeds per variant")
    ex.add_argument("--name", help="experiment directory name under --root")
    ex.add_argument("--root", default="runs", help="folder holding experiment directories")
    ex.add_argument(
        "--quick", action="store_true", help="a tiny smoke version (few steps, small budgets)"
    )
    ex.add_argument("--quiet", action="store_true", help="no progress bars")
    ex.set_defaults(func=_experiment)
    cfg = sub.add_parser("config", help="list every config key with its default and help")
    cfg.set_defaults(func=_config)
    pr = sub.add_parser("presets", help="list the YAML presets that load by name")
    pr.add_argument("group", nargs="?", help="only this folder: muzero, q_learning, experiments")
    pr.set_defaults(func=_presets)
    # Overrides may come after options (`train --seeds 2 a.b=1`): collect the leftovers.
    args, extra = parser.parse_known_args(argv)
    stray = [e for e in extra if e.startswith("-") or "=" not in e]
    if stray or (extra and args.command not in ("train", "sweep", "experiment")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.items = [*args.items, *extra]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from jaxmb.config import ConfigError
    from jaxmb.train import NonFiniteLossError

    try:
        return args.func(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
