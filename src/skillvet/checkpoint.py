"""Checkpoints through `torch.distributed.checkpoint` (DCP): the trainable weights and the
optimizer state of a run, saved by one process or by every rank of a torchrun job together.

    save(folder, policy, optimizer)          # collective when several processes run
    load(folder, policy, optimizer)          # the same weights and optimizer state back
    load(folder, policy)                     # the weights alone (eval, serve)

Choices:
- The state is DCP's own view of the model and optimizer (`get_state_dict`): parameter names
  as keys, frozen weights left out (a LoRA run stores its adapters only), sharded tensors
  (FSDP2) written shard by shard and replicated ones once. A checkpoint written by K processes
  loads in one, and the other way round.
- A folder with `trainable.pt` is a checkpoint from before DCP; it is read as it was written.
- A checkpoint that does not fit the model, or a damaged one, is a `DamagedRun` naming the
  folder.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from skillvet.policy.hf import Policy
from skillvet.rundir import DamagedRun, load_checkpoint_file


def _options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(ignore_frozen_params=True, strict=False)


def _distributed() -> bool:
    import torch.distributed as td

    return td.is_available() and td.is_initialized()


@contextmanager
def _dcp_call():
    """DCP in one process warns on every call that it assumes one process: it is meant."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def save(folder: Path, policy: Policy, optimizer: torch.optim.Optimizer) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_sd, optim_sd = get_state_dict(policy.model, optimizer, options=_options())
    with _dcp_call():
        dcp.save(
            {"model": model_sd, "optimizer": optim_sd},
            checkpoint_id=str(folder),
            no_dist=not _distributed(),
        )


def load(folder: Path, policy: Policy, optimizer: torch.optim.Optimizer | None = None) -> None:
    if (folder / "trainable.pt").is_file():
        policy.load_trainable_state(load_checkpoint_file(folder, "trainable.pt"))
        if optimizer is not None:
            optimizer.load_state_dict(load_checkpoint_file(folder, "optimizer.pt"))
        return
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_state_dict,
        set_model_state_dict,
        set_state_dict,
    )

    if not (folder / ".metadata").is_file():
        raise DamagedRun(f"checkpoint {folder} is damaged: it has no .metadata")
    options = _options()
    if optimizer is None:
        state = {"model": get_model_state_dict(policy.model, options=options)}
    else:
        model_sd, optim_sd = get_state_dict(policy.model, optimizer, options=options)
        state = {"model": model_sd, "optimizer": optim_sd}
    try:
        with _dcp_call():
            dcp.load(state, checkpoint_id=str(folder), no_dist=not _distributed())
    except (Exception, CheckpointException) as err:  # many kinds: a missing key, shape, file
        cause = (str(err).strip().splitlines() or [type(err).__name__])[-1]  # not its tracebacks
        raise DamagedRun(
            f"checkpoint {folder} is damaged or does not fit this model: {cause[:300]}"
        ) from err
    if optimizer is None:
        set_model_state_dict(policy.model, state["model"], options=options)
    else:
        set_state_dict(
            policy.model,
            optimizer,
            model_state_dict=state["model"],
            optim_state_dict=state["optimizer"],
            options=options,
        )
