"""The sampler seam: what plays the rollouts. Two engines stand behind it, and the loop does not
know which (DESIGN.md, "The engine seams"):

    sampler = make_sampler(policy, cfg.sampling)
    answers = sampler.generate(prompt_ids, max_new_tokens, temperature, generator, row_generators)
    ...                                   # the learner updates `policy`
    sampler.load_weights(policy)          # the next rollout samples from the new weights

- `HfSampler`: the learner's own model samples (`Policy.generate`). Its log-probs are the
  learner's to float rounding (`exact`), so the PPO ratio needs no correction; the reference
  engine and the CPU default.
- `VllmSampler` (`skillvet.policy.vllm`): vLLM, colocated with the learner on one device, given
  the learner's weights after every update. Its log-probs come from other kernels (`exact` is
  false): the learner recomputes them before the update, logs the mismatch and corrects it by
  truncated importance sampling (`skillvet.learner`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from skillvet.config import SamplingConfig
from skillvet.policy.hf import STOP_TEXT, Generation, Policy


class Sampler(Protocol):
    exact: bool
    """Its log-probs are the learner's own (no importance correction needed)."""
    device: torch.device
    tokenizer: object

    def encode_prompt(self, user_text: str) -> list[int]: ...

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        row_generators: Sequence[torch.Generator] | None = None,
        stop_text: str | None = STOP_TEXT,
        choices: Sequence[Sequence[str] | None] | None = None,
    ) -> list[Generation]: ...

    def load_weights(self, policy: Policy) -> None:
        """Sample from `policy`'s current weights from now on."""

    def release(self) -> None:
        """The rollout is over: free what the learner's update needs (vLLM's sleep)."""


class HfSampler:
    """The learner samples for itself: `Policy.generate`, nothing to sync."""

    exact = True

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.device = policy.device
        self.tokenizer = policy.tokenizer

    def encode_prompt(self, user_text: str) -> list[int]:
        return self.policy.encode_prompt(user_text)

    def generate(self, *args, **kwargs) -> list[Generation]:
        return self.policy.generate(*args, **kwargs)

    def load_weights(self, policy: Policy) -> None:
        """The learner's model is the sampler's: a new policy object (reloaded) is taken as is."""
        self.policy = policy

    def release(self) -> None:
        pass


def check_engine(cfg: SamplingConfig) -> None:
    """Fail now, before any work, if the engine `sampling.engine` names is not installed."""
    if cfg.engine == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise ImportError(
                "sampling.engine=vllm needs vLLM beside torch: `pip install vllm` (GPU) or "
                "scripts/vllm-cpu-env.sh (CPU)"
            )


def make_sampler(policy: Policy, cfg: SamplingConfig) -> Sampler:
    """The engine `sampling.engine` names, holding `policy`'s weights."""
    if cfg.engine == "hf":
        return HfSampler(policy)
    from skillvet.policy.vllm import VllmSampler

    return VllmSampler(policy, cfg.vllm)
