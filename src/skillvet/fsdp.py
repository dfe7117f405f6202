"""FSDP2 for full fine-tuning on several processes (`train.fsdp`, torchrun): the parameters,
gradients and optimizer state of the learner are sharded across ranks during the update.

    shard(policy)              # once, before the optimizer is made (on the shards)
    whole(policy)              # whole for rollouts, evals and scoring
    with sharded(policy):      # the update (and a checkpoint): sharded, all-gathered per layer
        update(...)
    state = full_state(policy) # every rank together; rank 0 gets the whole weights, on the CPU

Choices:
- One FSDP unit per decoder layer, then the model (embeddings and head); the KL reference model
  is sharded the same way and only ever runs inside the update.
- Outside the update the model is held whole (unsharded, and kept so after each forward): the
  rollouts, evals, skill scoring and a promotion round on rank 0 alone run forwards that differ
  in number from rank to rank, and a whole model needs no collective for them. The memory
  saved is the optimizer state and gradients (three quarters of full fine-tuning's under AdamW)
  and, during the update, the parameters.
- Inside the update every rank runs the same number of forward and backward passes (FSDP
  gathers each layer for each): a rank with fewer micro-batches runs extra passes on a
  one-token row whose loss is multiplied by 0 (`skillvet.learner`).
- One forward pass per backward: the learner's shared prompt head (a second forward through
  every layer, `skillvet.policy.hf`) is off, since FSDP frees a layer after its backward.
- Gradients are summed over ranks, not averaged: the loss already weighs each token by its
  share of the whole mini-batch over all ranks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from skillvet.policy.hf import Policy


def _models(policy: Policy) -> list[torch.nn.Module]:
    ref = getattr(policy, "_ref", None)
    return [policy.model, *([ref] if ref is not None else [])]


def is_sharded(policy: Policy) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(policy.model, FSDPModule)


def shard(policy: Policy) -> None:
    """Shard the policy (and its reference model) across the process group; `whole` then holds
    it whole for rollouts, `sharded` shards it again for an update."""
    from torch.distributed.fsdp import fully_shard

    for model in _models(policy):
        layers = [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]
        if not layers:
            raise ValueError(
                f"train.fsdp: {type(model).__name__} has no decoder layers to shard"
            )
        for layer in layers:
            fully_shard(layer)
        fully_shard(model)
        for unit in [*layers, model]:
            unit.set_gradient_divide_factor(1.0)  # summed, not averaged
            unit.set_force_sum_reduction_for_comms(True)  # a plain sum: gloo has no scaled one
    policy.share_prompt_head = False  # FSDP frees a layer after its backward: one forward each


def whole(policy: Policy) -> None:
    """Gather the sharded policy whole and keep it so (for rollouts): after the optimizer is
    made and any checkpoint loaded, both on the shards."""
    policy.model.unshard()
    policy.model.set_reshard_after_forward(False)


@contextmanager
def sharded(policy: Policy) -> Iterator[None]:
    """The policy sharded for the block (a no-op when it is not an FSDP model)."""
    if not is_sharded(policy):
        yield
        return
    policy.model.reshard()
    policy.model.set_reshard_after_forward(True)
    try:
        yield
    finally:
        whole(policy)


def full_state(policy: Policy) -> dict[str, torch.Tensor]:
    """The whole weights on rank 0's CPU (empty elsewhere); every rank calls it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    with sharded(policy):
        return get_model_state_dict(
            policy.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
