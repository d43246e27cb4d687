"""Suite adapters of host envs: one env of each suite behind one small interface.

An adapter has `observation_space` and `action_space` (plain-dict descriptions, see
`describe_space`), `reset(seed) -> obs`, `step(action) -> (obs, reward, terminated, truncated)`,
`close()`, and `autoresets` (True when the suite starts the next episode by itself, as gym3 does).
`MAKERS[suite](name, options)` makes one.

Like `host_worker.py`, this file imports only the standard library and NumPy at the top (each
suite is imported when its first env is made): worker processes under other interpreters load it
by path.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

# --------------------------------------------------------------------------- spaces


def describe_space(space: Any) -> dict:
    """A plain-dict description of a Gymnasium, gym or gym3 space (what crosses the pipe)."""
    kind = type(space).__name__
    if kind in ("Discrete", "TensorType") and hasattr(space, "n"):
        return {"kind": "discrete", "n": int(space.n), "start": int(getattr(space, "start", 0))}
    if kind == "Box":
        return {
            "kind": "box",
            "shape": tuple(int(d) for d in space.shape),
            "dtype": np.dtype(space.dtype).str,
            "low": np.broadcast_to(np.asarray(space.low), space.shape).copy(),
            "high": np.broadcast_to(np.asarray(space.high), space.shape).copy(),
        }
    return {"kind": kind, "repr": repr(space)}


def observation_output(space: dict) -> dict:
    """The space of the observations `EnvBatch` returns: uint8 stays, the rest is float32.

    A `Discrete(n)` observation becomes a float32 scalar in [start, start + n - 1].
    """
    if space["kind"] == "discrete":
        low, high = space["start"], space["start"] + space["n"] - 1
        return {"kind": "box", "shape": (), "dtype": "<f4", "low": low, "high": high}
    if space["kind"] != "box":
        raise TypeError(
            f"observations of kind {space['kind']} are not supported (only Box and Discrete): "
            f"{space.get('repr', '')}"
        )
    if np.dtype(space["dtype"]) == np.uint8:
        return dict(space)
    finite = np.finfo(np.float32).max
    return dict(
        space,
        dtype="<f4",
        low=np.clip(np.asarray(space["low"], np.float64), -finite, finite).astype(np.float32),
        high=np.clip(np.asarray(space["high"], np.float64), -finite, finite).astype(np.float32),
    )


# --------------------------------------------------------------------------- suites


class _GymnasiumAdapter:
    """A Gymnasium (or gym >= 0.26) env, optionally with an observation transform."""

    autoresets = False

    def __init__(self, env: Any, obs_transform=None, observation_space=None):
        self.env = env
        self._transform = obs_transform
        self.observation_space = describe_space(observation_space or env.observation_space)
        self.action_space = describe_space(env.action_space)

    def _obs(self, obs: Any) -> Any:
        return obs if self._transform is None else self._transform(obs)

    def reset(self, seed: int | None) -> Any:
        obs, _ = self.env.reset(seed=seed)
        return self._obs(obs)

    def step(self, action: Any) -> tuple[Any, float, bool, bool]:
        obs, reward, terminated, truncated, _ = self.env.step(action)
        return self._obs(obs), float(reward), bool(terminated), bool(truncated)

    def close(self) -> None:
        self.env.close()


def make_gym(name: str, options: dict) -> _GymnasiumAdapter:
    """`gym:<id>`: `gymnasium.make(id, **kwargs)` for any registered id."""
    import gymnasium

    if name.startswith("ALE/"):  # ale-py 0.12 registers its ids only when asked
        import ale_py

        gymnasium.register_envs(ale_py)
    kwargs = dict(options.get("kwargs", ()))
    if options.get("max_episode_steps") is not None:
        kwargs["max_episode_steps"] = int(options["max_episode_steps"])
    return _GymnasiumAdapter(gymnasium.make(name, **kwargs))


def make_ale(name: str, options: dict) -> _GymnasiumAdapter:
    """`ale:<Game>-v5` with the preprocessing of the MuZero papers (Machado et al. 2018 setup).

    Frame skip with a max-pool over the last two frames, grey or RGB frames resized to
    `screen_size`, `frame_stack` frames stacked on the channel axis (`[H, W, C * stack]`),
    sticky actions, terminal on game over (not on life loss) and a time limit of
    `max_frames` emulator frames reported as truncation.
    """
    import ale_py
    import gymnasium
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gymnasium.register_envs(ale_py)
    env = gymnasium.make(
        f"ALE/{name}",
        frameskip=1,  # AtariPreprocessing skips (and max-pools) frames itself
        repeat_action_probability=float(options["sticky_action_probability"]),
        full_action_space=bool(options["full_action_space"]),
        max_num_frames_per_episode=int(options["max_frames"]),
    )
    grey = bool(options["grayscale"])
    env = AtariPreprocessing(
        env,
        noop_max=int(options["noop_max"]),
        frame_skip=int(options["frame_skip"]),
        screen_size=int(options["screen_size"]),
        terminal_on_life_loss=False,
        grayscale_obs=grey,
        grayscale_newaxis=False,
        scale_obs=False,
    )
    stack = int(options["frame_stack"])
    env = FrameStackObservation(env, stack)
    size = int(options["screen_size"])
    channels = stack if grey else 3 * stack
    space = gymnasium.spaces.Box(0, 255, (size, size, channels), np.uint8)
    return _GymnasiumAdapter(env, functools.partial(atari_channels_last, grey), space)


def atari_channels_last(grey: bool, obs: np.ndarray) -> np.ndarray:
    """`[stack, H, W]` or `[stack, H, W, 3]` -> `[H, W, stack]` or `[H, W, stack * 3]`."""
    obs = np.asarray(obs)
    if grey:
        return np.transpose(obs, (1, 2, 0))
    stack, height, width, _ = obs.shape
    return np.transpose(obs, (1, 2, 0, 3)).reshape(height, width, stack * 3)


class _ProcgenAdapter:
    """One Procgen env through the gym3 API (`procgen-mirror` registers with old gym only).

    Procgen seeds its level sequence at construction (`rand_seed`), so `reset(seed)` rebuilds
    the env. gym3 envs reset themselves: the observation after the last step of an episode is
    already the next episode's first, and the last one is not reported; Procgen's own time
    limits come back as `done`, i.e. terminated.
    """

    autoresets = True

    def __init__(self, name: str, options: dict):
        self.name = name
        self.options = options
        self._env = None
        self.observation_space = {
            "kind": "box",
            "shape": (64, 64, 3),
            "dtype": "|u1",
            "low": np.zeros((64, 64, 3), np.uint8),
            "high": np.full((64, 64, 3), 255, np.uint8),
        }
        self.action_space = {"kind": "discrete", "n": 15, "start": 0}

    def reset(self, seed: int | None) -> np.ndarray:
        from procgen import ProcgenGym3Env

        self._env = None  # gym3 envs free themselves when collected
        kwargs = dict(self.options.get("kwargs", ()))
        self._env = ProcgenGym3Env(
            num=1,
            env_name=self.name,
            num_levels=int(self.options["num_levels"]),
            start_level=int(self.options["start_level"]),
            distribution_mode=str(self.options["distribution_mode"]),
            rand_seed=0 if seed is None else int(seed),
            **kwargs,
        )
        _, obs, _ = self._env.observe()
        return obs["rgb"][0]

    def step(self, action: Any) -> tuple[Any, float, bool, bool]:
        self._env.act(np.asarray([action], np.int32))
        reward, obs, first = self._env.observe()
        return obs["rgb"][0], float(reward[0]), bool(first[0]), False

    def close(self) -> None:
        self._env = None


def make_procgen(name: str, options: dict) -> _ProcgenAdapter:
    """`procgen:<game>` with `num_levels`, `start_level`, `distribution_mode` as in Procgen."""
    import procgen  # noqa: F401  (fail here, with the import error, if it is missing)

    return _ProcgenAdapter(name, options)


class _MetaWorldAdapter(_GymnasiumAdapter):
    """One Meta-World task with its goal positions ("tasks"); a new one is drawn each episode.

    The goal positions come from Meta-World's own benchmarks, seeded with `benchmark_seed`:
    `task_set="mt1"` is MT1's 50 positions, `"train"` and `"test"` are ML1's split (50 each), for
    transfer experiments. `reset(seed)` seeds the draw and the env; later episodes continue.
    """

    def __init__(self, env: Any, tasks: list):
        super().__init__(env)
        self.tasks = tasks
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int | None) -> Any:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.env.unwrapped.set_task(self.tasks[int(self.rng.integers(len(self.tasks)))])
        obs, _ = self.env.reset(seed=seed)
        return obs


def make_metaworld(name: str, options: dict) -> _MetaWorldAdapter:
    """`metaworld:<task>-v3`, e.g. `metaworld:reach-v3` (see `_MetaWorldAdapter`)."""
    import gymnasium
    import metaworld

    task_set = str(options.get("task_set", "mt1"))
    seed = int(options.get("benchmark_seed", 0))
    if task_set == "mt1":
        benchmark = metaworld.MT1(name, seed=seed)
    elif task_set in ("train", "test"):
        benchmark = metaworld.ML1(name, seed=seed)
    else:
        raise ValueError(f"task_set must be mt1, train or test, got {task_set!r}")
    test = task_set == "test"
    classes = benchmark.test_classes if test else benchmark.train_classes
    tasks = benchmark.test_tasks if test else benchmark.train_tasks
    env = classes[name]()
    limit = options.get("max_episode_steps") or env.max_path_length
    return _MetaWorldAdapter(gymnasium.wrappers.TimeLimit(env, int(limit)), tasks)


class _RobodeskAdapter:
    """RoboDesk 1.0 (old gym API: `reset() -> obs`, `step -> 4-tuple`; dict observations).

    The observation is the entry `observation` of RoboDesk's dict (`"image"`: `[S, S, 3]`
    uint8). RoboDesk ends episodes only at its `episode_length`, which is a time limit, so
    `done` is reported as truncated. RoboDesk draws its initial states from NumPy's global
    generator, which `reset(seed)` seeds.
    """

    autoresets = False

    def __init__(self, env: Any, key: str):
        self.env = env
        self.key = key
        space = env.observation_space[key]
        self.observation_space = describe_space(space)
        self.action_space = describe_space(env.action_space)

    def reset(self, seed: int | None) -> Any:
        if seed is not None:
            np.random.seed(seed)
        return self.env.reset()[self.key]

    def step(self, action: Any) -> tuple[Any, float, bool, bool]:
        obs, reward, done, _ = self.env.step(action)
        return obs[self.key], float(reward), False, bool(done)

    def close(self) -> None:
        for physics in (self.env.physics, self.env.physics_copy):
            physics.free()  # its rendering context, on the thread that made it current


def make_robodesk(name: str, options: dict) -> _RobodeskAdapter:
    """`robodesk:<task>`, e.g. `robodesk:open_slide`; renders with EGL (about 280 ms a step)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    import PIL.Image

    if not hasattr(PIL.Image, "ANTIALIAS"):  # robodesk 1.0 uses a name Pillow 10 removed
        PIL.Image.ANTIALIAS = PIL.Image.LANCZOS
    from robodesk import robodesk

    env = robodesk.RoboDesk(
        task=name,
        reward=str(options["reward"]),
        action_repeat=int(options["action_repeat"]),
        episode_length=int(options["episode_length"]),
        image_size=int(options["image_size"]),
    )
    return _RobodeskAdapter(env, str(options["observation"]))


THREAD_BOUND_SUITES = frozenset({"robodesk"})
"""Suites whose envs must be made and stepped on one thread (dm_control's EGL contexts)."""

MAKERS = {
    "gym": make_gym,
    "ale": make_ale,
    "procgen": make_procgen,
    "metaworld": make_metaworld,
    "robodesk": make_robodesk,
}


def make_env(suite: str, name: str, options: dict) -> Any:
    """One env of `suite` (a key of `MAKERS`)."""
    return MAKERS[suite](name, options)
