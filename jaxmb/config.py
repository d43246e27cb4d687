"""Typed, frozen configuration: the one source of truth for a run.

A `Config` is a tree of frozen dataclasses. YAML presets (`configs/muzero/*.yaml`, shipped in
the package and loaded by name: `jaxmb.presets`) fill it and dotted overrides change single
fields::

    cfg = jaxmb.config.load("muzero/cartpole", overrides=["agent.search.num_simulations=50"])
    cfg = jaxmb.config.load("configs/muzero/cartpole.yaml")   # a path works too

Unknown keys, wrong types, out-of-range values and inconsistent combinations raise
`ConfigError` naming the key. `python -m jaxmb config` prints every key with its help.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from jaxmb import configlib, presets
from jaxmb.agents.registry import MUZERO_LOSS_WEIGHTS
from jaxmb.configlib import ConfigError, check, field

__all__ = [
    "AgentConfig",
    "Config",
    "ConfigError",
    "DiscretizeConfig",
    "EnvConfig",
    "LossConfig",
    "NetworkConfig",
    "OptimConfig",
    "ReplayConfig",
    "RunConfig",
    "SSLConfig",
    "SearchConfig",
    "SupportConfig",
    "TrainConfig",
    "RewardConfig",
    "load",
]

_frozen = dataclasses.dataclass(frozen=True, kw_only=True)


@_frozen
class DiscretizeConfig:
    mode: Literal["none", "grid", "codebook"] = field(
        "none",
        help="continuous actions for search: grid = evenly spaced values per dimension, all "
        "combinations; codebook = zero action plus +/-push on each dimension",
    )
    values_per_dim: int = field(3, low=2, help="grid: values per action dimension")
    push: float = field(
        1.0, gt=0.0, high=1.0, help="codebook: each push, as a fraction of the half-range"
    )


@_frozen
class EnvConfig:
    id: str = field("gymnax:CartPole-v1", help="environment id, with its source prefix")
    num_envs: int = field(16, low=1, help="environments stepped in parallel for training")
    num_eval_envs: int = field(16, low=1, help="environments (= episodes) per evaluation")
    eval_unseen_levels: bool = field(
        False,
        help="also evaluate on levels outside the training range (env.params.num_levels "
        "from start_level): eval/unseen_episode_return beside eval/episode_return",
    )
    eval_max_steps: int = field(
        1000, low=1, help="cap on steps of one evaluation episode (envs with no time limit)"
    )
    params: dict[str, Any] = field(
        default_factory=dict,
        help="overrides of the env params pytree, e.g. max_steps_in_episode; host envs also "
        "take strings and mappings (procgen distribution_mode, gym kwargs)",
    )
    discretize: DiscretizeConfig = field(
        default_factory=DiscretizeConfig,
        help="action discretisation for envs with continuous (Box) actions",
    )
    action_repeat: int = field(
        1,
        low=1,
        help="hold each action for this many env steps, summing rewards (DMC's action "
        "repeat); the loop's env steps (train.total_env_steps, the env_steps metric, "
        "replay sizes) then count agent decisions, each up to action_repeat env steps",
    )


@_frozen
class SupportConfig:
    num_atoms: int = field(601, low=2, help="atoms of the categorical support")
    vmin: float = field(-300.0, help="first atom, on the h-transformed scale")
    vmax: float = field(300.0, help="last atom, on the h-transformed scale")
    eps: float = field(1e-3, low=0.0, help="eps of h(x) = sign(x)(sqrt(|x|+1)-1) + eps x")
    use_transform: bool = field(True, help="squash targets with h before projecting")

    def __post_init__(self) -> None:
        check(self.vmax > self.vmin, "vmax", f"must exceed vmin ({self.vmin}), got {self.vmax}")


@_frozen
class NetworkConfig:
    torso: Literal["auto", "mlp", "resnet"] = field(
        "auto", help="encoder torso; auto picks resnet for image (rank-3) observations"
    )
    hidden_sizes: tuple[int, ...] = field((64, 64), low=1, help="MLP encoder layer widths")
    latent_dim: int = field(64, low=1, help="size of the latent state")
    dynamics_hidden_sizes: tuple[int, ...] = field((64, 64), low=1, help="dynamics MLP widths")
    head_hidden_sizes: tuple[int, ...] = field((64,), low=1, help="widths of each head's MLP")
    activation: Literal["relu", "elu", "gelu", "silu"] = field("relu", help="activation")
    layer_norm: bool = field(True, help="LayerNorm after each hidden layer")
    latent_norm: Literal["minmax", "layernorm", "none"] = field(
        "minmax", help="latent normalisation; minmax rescales to [0, 1] as in MuZero"
    )
    conv_channels: int = field(32, low=1, help="channels of the residual conv torso")
    num_res_blocks: int = field(2, low=0, help="residual blocks of the conv torso")
    value_support: SupportConfig = field(
        default_factory=lambda: SupportConfig(num_atoms=51, vmin=-25.0, vmax=25.0),
        help="categorical support of the value head",
    )
    reward_support: SupportConfig = field(
        default_factory=lambda: SupportConfig(num_atoms=21, vmin=-10.0, vmax=10.0),
        help="categorical support of the reward head",
    )


@_frozen
class SearchConfig:
    algorithm: Literal["muzero", "gumbel"] = field(
        "gumbel", help="mctx.muzero_policy (PUCT) or mctx.gumbel_muzero_policy"
    )
    num_simulations: int = field(
        16,
        low=1,
        help="the train-time budget: simulations per search while collecting data and per "
        "reanalyse search for targets",
    )
    num_simulations_test: int | None = field(
        None,
        low=1,
        help="the test-time budget: simulations per search at evaluation (None: num_simulations)",
    )
    for_targets: bool = field(
        True,
        help="policy targets are search policies (reanalysed with the target network for "
        "agent.loss.reanalyse_fraction of each batch, else those stored when acting) and "
        "reanalysed rows bootstrap from search values; off: no tree for targets, the policy "
        "target is a one-step lookahead with the learned model and the value target the n-step "
        "return bootstrapped with the target value head",
    )
    for_acting_train: bool = field(
        True, help="act with search while collecting data; off: sample the policy prior"
    )
    for_acting_test: bool = field(
        True, help="act with search at evaluation; off: the policy prior (see greedy_eval)"
    )
    max_depth: int | None = field(
        None,
        low=1,
        help="tree depth limit (mctx max_depth): a simulation stops at this depth and "
        "re-evaluates the node it reached there",
    )
    uct_depth: int | None = field(
        None,
        low=1,
        help="D_UCT: interior nodes at this depth or deeper pick actions by sampling the prior "
        "instead of PUCT/Gumbel selection (the root always searches, so 1 = search at the root "
        "only); None: everywhere",
    )
    rollout_horizon: int = field(
        0,
        low=0,
        help="H: a new leaf's value is mixed with the return of an H-step rollout in the "
        "learned model following the prior, bootstrapped with the value head (0: no rollouts)",
    )
    rollout_mix: float = field(
        1.0,
        low=0.0,
        high=1.0,
        help="weight of the rollout return in a leaf's value (1: replace the value head's "
        "estimate)",
        static=False,
    )
    rollout_greedy: bool = field(
        False, help="rollouts follow the prior's most likely action instead of sampling it"
    )
    model: Literal["learned", "env"] = field(
        "learned",
        help="what search plans with when acting: the learned model, or the environment "
        "itself (a perfect model, AlphaZero-style; JAX envs only; value and prior still "
        "from the networks)",
    )
    one_step_target: Literal["softmax", "completed_q"] = field(
        "softmax",
        help="with for_targets off: softmax(Q / one_step_temperature) over legal actions, or "
        "Gumbel MuZero's completed-Q improvement softmax(logits + sigma(Q)) with every action "
        "looked at once",
    )
    one_step_temperature: float = field(
        1.0, gt=0.0, help="temperature of the one-step softmax policy target", static=False
    )
    temperature: float = field(
        1.0, low=0.0, help="muzero: visit-count temperature for acting while training", static=False
    )
    dirichlet_alpha: float = field(
        0.3, gt=0.0, help="muzero: root Dirichlet noise alpha", static=False
    )
    dirichlet_fraction: float = field(
        0.25, low=0.0, high=1.0, help="muzero: root noise weight (0 at evaluation)", static=False
    )
    pb_c_init: float = field(1.25, gt=0.0, help="muzero: PUCT exploration constant", static=False)
    pb_c_base: float = field(19652.0, gt=0.0, help="muzero: PUCT base", static=False)
    gumbel_scale: float = field(
        1.0, low=0.0, help="gumbel: scale of the root Gumbel noise", static=False
    )
    max_num_considered_actions: int = field(
        16, low=1, help="gumbel: actions considered by sequential halving"
    )
    value_scale: float = field(
        0.1, gt=0.0, help="gumbel: sigma's value_scale (mctx default)", static=False
    )
    maxvisit_init: float = field(50.0, gt=0.0, help="gumbel: sigma's maxvisit_init", static=False)
    greedy_eval: bool = field(True, help="evaluation picks the best action (no noise)")

    @property
    def simulations_test(self) -> int:
        return (
            self.num_simulations
            if self.num_simulations_test is None
            else (self.num_simulations_test)
        )


@_frozen
class LossConfig:
    unroll_steps: int = field(5, low=1, help="K: model steps unrolled per sampled position")
    td_steps: int = field(10, low=1, help="n of the n-step value target")
    discount: float = field(
        0.99, gt=0.0, high=1.0, help="discount of returns and search", static=False
    )
    bootstrap: Literal["target_network", "stored"] = field(
        "target_network",
        help=(
            "value at t+n: the target network's value of obs_{t+n}, or the value stored "
            "when acting (the search root value when acting with search)"
        ),
    )
    reanalyse_fraction: float = field(
        0.0,
        low=0.0,
        high=1.0,
        help="fraction of each batch whose policy and value targets come from a fresh search "
        "with the target network (MuZero Reanalyse)",
    )
    weights: dict[str, float] = field(
        default_factory=lambda: dict(MUZERO_LOSS_WEIGHTS),
        help="weight of each named loss term (jaxmb.losses; `python -m jaxmb config` lists "
        "them); 0 removes the term. These defaults are MuZero's; with another agent.kind, "
        "weights left at them become that agent's own default terms",
        static=False,
    )
    dynamics_gradient_scale: float = field(
        0.5,
        low=0.0,
        high=1.0,
        help="gradient scale at each dynamics step (MuZero: 0.5)",
        static=False,
    )
    terminal_threshold: float = field(
        0.5,
        gt=0.0,
        high=1.0,
        help="predicted termination probability that makes a model "
        "state absorbing (discount 0) in search",
        static=False,
    )

    #: Keys of earlier versions, dropped when a saved config holds them at these values.
    RETIRED_KEYS: ClassVar[dict[str, Any]] = {"inject_nan_at_update": 0}


@_frozen
class OptimConfig:
    learning_rate: float = field(3e-3, gt=0.0, help="Adam learning rate", static=False)
    warmup_updates: int = field(0, low=0, help="linear learning-rate warm-up, in SGD updates")
    weight_decay: float = field(0.0, low=0.0, help="decoupled weight decay (AdamW)", static=False)
    max_grad_norm: float = field(5.0, gt=0.0, help="global gradient-norm clip", static=False)
    adam_eps: float = field(1e-8, gt=0.0, help="Adam epsilon", static=False)
    target_update_period: int = field(
        100, low=1, help="SGD updates between copies of the online params to the target params"
    )


@_frozen
class InitFromConfig:
    run: str = field(
        "",
        help="a run directory whose latest checkpoint gives the parts (empty: no transfer)",
    )
    parts: tuple[str, ...] = field(
        (),
        help="parameter parts to copy (muzero: encoder, prior_heads, model, dynamics_heads; "
        "q_learning: encoder, q_head); the rest, and the optimiser state, start fresh",
    )


@_frozen
class QLearningConfig:
    exploration: Literal["epsilon_greedy", "boltzmann"] = field(
        "epsilon_greedy",
        help="q_learning: acting while training; epsilon_greedy = a uniformly random legal "
        "action with probability epsilon, else the greedy one; boltzmann = sample "
        "softmax(Q / temperature) over legal actions (evaluation is always greedy)",
    )
    epsilon_start: float = field(
        1.0, low=0.0, high=1.0, help="q_learning: epsilon before the first SGD update", static=False
    )
    epsilon_end: float = field(
        0.01, low=0.0, high=1.0, help="q_learning: epsilon after the decay", static=False
    )
    epsilon_decay_updates: int = field(
        1_000,
        low=0,
        help="q_learning: SGD updates over which epsilon falls linearly from epsilon_start to "
        "epsilon_end (the agent counts updates; env steps = updates / train.replay_ratio once "
        "replay.min_size is collected); 0: epsilon_end throughout",
    )
    temperature: float = field(
        1.0, gt=0.0, help="q_learning: boltzmann temperature, on the scale of returns", static=False
    )
    double_q: bool = field(
        True,
        help="q_learning: Double DQN bootstrap (the online network picks the greedy action at "
        "t+n, the target network values it); off: the target network's own max",
    )


@_frozen
class SSLConfig:
    """The self-supervised loss terms' settings (`jaxmb.losses.ssl`; their weights are
    `agent.loss.weights.{reconstruction,spr,contrastive}`, 0 by default)."""

    target: Literal["ema", "target_network"] = field(
        "ema",
        help="spr, contrastive: the target encoder and projection, an exponential moving "
        "average of the online ones (ema) or the spine's target network (target_network)",
    )
    ema_decay: float = field(
        0.99,
        low=0.0,
        high=1.0,
        help="spr, contrastive: decay of the moving average, per SGD update (target=ema)",
        static=False,
    )
    projection_dim: int = field(
        64, low=1, help="spr, contrastive: width of the projection (and prediction) output"
    )
    head_hidden_sizes: tuple[int, ...] = field(
        (128,), low=1, help="spr, contrastive: hidden widths of the projection and prediction heads"
    )
    reconstruction_loss: Literal["l2", "cross_entropy"] = field(
        "l2",
        help="reconstruction: squared error, or per-element binary cross-entropy with the "
        "observation scaled to [0, 1] as the target (images, binary feature planes)",
    )
    decoder: Literal["auto", "deconv", "mlp"] = field(
        "auto",
        help="reconstruction: the decoder; auto = deconv (dense, then a sub-pixel "
        "convolution) for image observations [H, W, C], an MLP for vectors",
    )
    decoder_hidden_sizes: tuple[int, ...] = field(
        (128,), low=1, help="reconstruction: MLP decoder widths"
    )
    decoder_channels: int = field(
        32, low=1, help="reconstruction: channels of the deconvolution decoder (images)"
    )
    temperature: float = field(0.1, gt=0.0, help="contrastive: InfoNCE temperature", static=False)
    negatives: Literal["batch", "batch_and_time"] = field(
        "batch_and_time",
        help="contrastive: the candidates each prediction must tell its observation from; "
        "batch = the other windows' observations at the same step, batch_and_time = every "
        "observation of every window at every unrolled step",
    )


@_frozen
class AgentConfig:
    kind: str = field(
        "muzero",
        help="the agent, by registry name (jaxmb.agents.registry): muzero, q_learning, ...",
    )
    network: NetworkConfig = field(default_factory=NetworkConfig, help="networks")
    search: SearchConfig = field(default_factory=SearchConfig, help="search (mctx)")
    loss: LossConfig = field(default_factory=LossConfig, help="targets and loss terms")
    ssl: SSLConfig = field(
        default_factory=SSLConfig, help="self-supervised loss terms (jaxmb.losses.ssl)"
    )
    optim: OptimConfig = field(default_factory=OptimConfig, help="optimiser")
    init_from: InitFromConfig = field(
        default_factory=InitFromConfig,
        help="start from parts of another run's latest checkpoint (transfer by part)",
    )
    q_learning: QLearningConfig = field(
        default_factory=QLearningConfig,
        help="the model-free baseline (agent.kind=q_learning): exploration and Double Q",
    )

    def __post_init__(self) -> None:
        try:
            entry = self._check_kind()
        except ConfigError as err:  # keys relative to this section: the builder adds "agent."
            key = err.key[len("agent.") :] if (err.key or "").startswith("agent.") else err.key
            raise ConfigError(err.message, key) from err
        unknown = [p for p in self.init_from.parts if p not in entry.parts]
        check(
            not unknown,
            "init_from.parts",
            f"agent.kind={self.kind} has no part {unknown}; its parts: {', '.join(entry.parts)}",
        )
        check(
            bool(self.init_from.run) or not self.init_from.parts,
            "init_from.run",
            "init_from.parts is set but no run to take them from",
        )
        search, loss = self.search, self.loss
        if search.for_targets:
            check(
                search.for_acting_train or loss.reanalyse_fraction == 1.0,
                "loss.reanalyse_fraction",
                "with agent.search.for_targets on and for_acting_train off, the stored "
                "policies are the prior's, not search's: search targets need "
                f"reanalyse_fraction=1 (got {loss.reanalyse_fraction})",
            )
        else:
            check(
                loss.reanalyse_fraction == 0.0,
                "loss.reanalyse_fraction",
                "agent.search.for_targets is off, so no tree is built for targets: set "
                f"reanalyse_fraction=0 (got {loss.reanalyse_fraction})",
            )
            check(
                not (loss.bootstrap == "stored" and search.for_acting_train),
                "loss.bootstrap",
                "agent.search.for_targets is off but the stored values are search root values "
                "(for_acting_train is on): use bootstrap=target_network",
            )

    def _check_kind(self):
        from jaxmb import losses
        from jaxmb.agents import registry

        entry = registry.spec(self.kind)
        if self.loss.weights == MUZERO_LOSS_WEIGHTS and entry.loss_weights != MUZERO_LOSS_WEIGHTS:
            # The defaults mean "the agent's own terms", written out in saved configs.
            loss = dataclasses.replace(self.loss, weights=dict(entry.loss_weights))
            object.__setattr__(self, "loss", loss)
        losses.check(self.loss.weights, entry.provides, self.kind)
        registry.check_config(self)
        return entry


@_frozen
class ReplayConfig:
    capacity: int = field(65_536, low=1, help="transitions held (all envs together)")
    min_size: int = field(1_000, low=0, help="transitions collected before SGD starts")
    batch_size: int = field(128, low=1, help="sequences per SGD update")
    prioritized: bool = field(False, help="sample in proportion to priority^alpha")
    priority_exponent: float = field(1.0, low=0.0, help="alpha of prioritized replay", static=False)
    importance_exponent: float = field(
        1.0, low=0.0, help="beta of the importance weights", static=False
    )
    augment_symmetries: bool = field(
        False,
        help="apply a random symmetry of the env (its `symmetries`: Go's 8 board rotations "
        "and reflections) to each sampled window's observations, actions, policies and legal "
        "masks, as AlphaGo Zero augmented its training data",
    )


@_frozen
class CountConfig:
    hash_bits: int = field(
        12,
        low=1,
        high=24,
        help="SimHash code length k: observations are counted in 2^k buckets by the signs of "
        "k fixed random projections (Tang et al. 2017)",
    )


@_frozen
class RNDConfig:
    """Random network distillation (`jaxmb.rewards.rnd`)."""

    hidden_size: int = field(256, low=1, help="width of the target's and predictor's dense layers")
    embedding_dim: int = field(64, low=1, help="output width of the target and the predictor")
    learning_rate: float = field(3e-4, gt=0.0, help="the predictor's Adam step size")
    update_proportion: float = field(
        1.0,
        gt=0.0,
        high=1.0,
        help="share of each sampled batch's observations the predictor trains on (Burda et al. "
        "kept 0.25 with 128 envs and more)",
    )
    return_discount: float = field(
        0.99,
        low=0.0,
        lt=1.0,
        help="discount of the non-episodic intrinsic return whose running std scales the reward",
    )
    return_std_window: int = field(
        0,
        low=0,
        help="the running std follows about this many of the latest intrinsic returns (0: "
        "all of them, as the paper; a window keeps the reward's scale where the predictor "
        "learns a small env's states quickly)",
    )


@_frozen
class DisagreementConfig:
    """Latent disagreement (`jaxmb.rewards.disagreement`)."""

    ensemble_size: int = field(5, low=2, help="one-step latent predictors in the ensemble")
    hidden_sizes: tuple[int, ...] = field((256,), low=1, help="each predictor's hidden widths")
    learning_rate: float = field(3e-4, gt=0.0, help="the ensemble's Adam step size")
    normalize: bool = field(True, help="divide the disagreement by its running standard deviation")


@_frozen
class RewardConfig:
    transform: str = field(
        "identity",
        help="reward transform between replay and the targets (jaxmb.rewards): identity; count "
        "(a count-based novelty bonus, for small envs); rnd (random network distillation); "
        "disagreement (an ensemble of one-step latent predictors)",
    )
    env_weight: float = field(
        1.0, low=0.0, help="weight of the env's reward in the trained reward", static=False
    )
    intrinsic_weight: float = field(
        0.0, low=0.0, help="weight of the intrinsic reward in the trained reward", static=False
    )
    exploration_env_steps: int = field(
        0,
        low=0,
        help="env steps at the start of the run that form the exploration phase, whose "
        "weights are the exploration_* ones (0: no such phase)",
    )
    exploration_env_weight: float = field(
        0.0, low=0.0, help="env reward weight in the exploration phase", static=False
    )
    exploration_intrinsic_weight: float = field(
        1.0, low=0.0, help="intrinsic reward weight in the exploration phase", static=False
    )
    count: CountConfig = field(default_factory=CountConfig, help="the count transform")
    rnd: RNDConfig = field(default_factory=RNDConfig, help="the rnd transform")
    disagreement: DisagreementConfig = field(
        default_factory=DisagreementConfig, help="the disagreement transform"
    )

    def __post_init__(self) -> None:
        from jaxmb import rewards

        rewards.spec(self.transform)  # a ConfigError listing the registered transforms


@_frozen
class TrainConfig:
    total_env_steps: int = field(20_000, low=1, help="environment steps of the whole run")
    rollout_steps: int = field(4, low=1, help="steps each env takes per iteration")
    replay_ratio: float = field(
        0.5,
        gt=0.0,
        help="SGD updates per environment step (updates per iteration = "
        "replay_ratio * rollout_steps * num_envs, which must be an integer)",
    )
    eval_every: int = field(
        2_000,
        low=0,
        help="environment steps between greedy evaluations inside the program (also after the "
        "last iteration); 0: never evaluate",
    )
    log_every: int = field(1_000, low=1, help="environment steps between metric callbacks")
    checkpoint_every: int = field(
        0, low=0, help="environment steps between checkpoints (0: only at the end)"
    )
    random_action_prob: float = field(
        0.0,
        low=0.0,
        high=1.0,
        help="chance that a training env step takes a uniformly random legal action instead "
        "of the agent's (1: random behaviour, the transfer study's ablation); replay keeps "
        "the agent's own record fields (MuZero's search policy and value) either way",
        static=False,
    )


@_frozen
class RunConfig:
    name: str = field("", help="run directory name under `root` (empty: generated)")
    root: str = field("runs", help="folder holding run directories")
    seed: int = field(0, low=0, help="base PRNG seed")
    num_seeds: int = field(1, low=1, help="seeds trained together with vmap")
    tensorboard: bool = field(True, help="write TensorBoard events")
    progress: bool = field(True, help="show a rich progress bar")
    compile_cache: bool = field(
        True,
        help="keep compiled programs in JAX's persistent cache under "
        "$XDG_CACHE_HOME/jaxmb/jax-compile-cache (JAX_COMPILATION_CACHE_DIR wins)",
    )
    memory_check: bool = field(
        True,
        help="estimate the run's peak memory before anything is traced or allocated, and "
        "refuse a run that does not fit with an error naming the key that contributes the "
        "most (jaxmb.memory); false skips the check",
    )


@_frozen
class Config:
    env: EnvConfig = field(default_factory=EnvConfig, help="environment")
    agent: AgentConfig = field(default_factory=AgentConfig, help="agent")
    replay: ReplayConfig = field(default_factory=ReplayConfig, help="in-graph replay")
    reward: RewardConfig = field(
        default_factory=RewardConfig, help="reward transforms: intrinsic rewards and phases"
    )
    train: TrainConfig = field(default_factory=TrainConfig, help="the compiled loop")
    run: RunConfig = field(default_factory=RunConfig, help="run directory and logging")

    def __post_init__(self) -> None:
        steps_per_iter = self.train.rollout_steps * self.env.num_envs
        updates = self.train.replay_ratio * steps_per_iter
        check(
            abs(updates - round(updates)) < 1e-9 and round(updates) >= 1,
            "train.replay_ratio",
            f"replay_ratio * rollout_steps * num_envs = {self.train.replay_ratio} * "
            f"{self.train.rollout_steps} * {self.env.num_envs} = {updates:g} must be a "
            "positive integer (SGD updates per iteration)",
        )
        check(
            self.replay.capacity % steps_per_iter == 0,
            "replay.capacity",
            f"must be a multiple of rollout_steps * num_envs = {steps_per_iter}, got "
            f"{self.replay.capacity}",
        )
        window = self.agent.loss.unroll_steps + self.agent.loss.td_steps + 1
        check(
            self.replay.capacity // self.env.num_envs > 2 * window,
            "replay.capacity",
            f"holds {self.replay.capacity // self.env.num_envs} steps per env; needs more "
            f"than twice the sampled window (unroll_steps + td_steps + 1 = {window})",
        )
        check(
            self.train.total_env_steps >= steps_per_iter,
            "train.total_env_steps",
            f"must be at least one iteration (rollout_steps * num_envs = {steps_per_iter})",
        )
        check(
            self.replay.min_size <= self.replay.capacity,
            "replay.min_size",
            f"must not exceed replay.capacity ({self.replay.capacity})",
        )

    # Derived values of the loop.
    @property
    def steps_per_iteration(self) -> int:
        return self.train.rollout_steps * self.env.num_envs

    @property
    def num_iterations(self) -> int:
        return max(1, self.train.total_env_steps // self.steps_per_iteration)

    @property
    def updates_per_iteration(self) -> int:
        return round(self.train.replay_ratio * self.steps_per_iteration)

    def every(self, env_steps: int) -> int:
        """An interval in env steps, as a whole number (>= 1) of iterations."""
        return max(1, round(env_steps / self.steps_per_iteration))


def load(path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = ()) -> Config:
    """Builds a `Config` from an optional YAML preset and dotted overrides.

    Args:
      path: A YAML file, or a preset's name (`"muzero/cartpole"`; `python -m jaxmb presets`
        lists them), or None for the defaults alone. An existing file wins over a name.
      overrides: Dotted `key=value` strings, applied after the file.

    Raises:
      ConfigError: For a file or name that matches nothing (naming the close presets), or any
        problem in the values.
    """
    return configlib.load(None if path is None else presets.resolve(path), overrides, cls=Config)


def from_dict(data) -> Config:
    return configlib.from_dict(Config, data)


def to_dict(cfg: Config) -> dict:
    return configlib.to_dict(cfg)
