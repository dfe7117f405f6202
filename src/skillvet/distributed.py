"""One run on several processes: `torchrun --nproc_per_node K -m skillvet train ...`.

    dist = Dist.from_env()                # world 1 unless torchrun started this process
    mine = dist.share(len(tasks))         # this rank's whole task groups, a contiguous range
    everyone = dist.gather(obj)           # every rank's obj, in rank order, on every rank
    dist.reduce_grads(params)             # gradients summed over ranks before the step

Choices:
- Every rank samples the same tasks (the seeds are the run's) and plays a contiguous range of
  whole groups, so GiGPO's episode and step groups never split across ranks, and rank r's rows
  follow rank r-1's: concatenated in rank order they are the one-process run's rows, in its
  order. Every random draw of a rollout is seeded by (run seed, iteration, episode), never by
  the batch it shares, so a rank samples what the one process would have.
- The learner is data-parallel: every rank holds the whole trainable model, computes the loss of
  its rows weighted by their share of the mini-batch's tokens over all ranks, and the gradients
  are summed (`all_reduce`) before clipping and the optimizer step; the update is the
  one-process update to float rounding. A parameter with no gradient on any rank keeps none,
  as in one process.
- gloo on CPU, nccl on CUDA (each rank on `cuda:LOCAL_RANK`). The process group's timeout is
  long (`TIMEOUT`): the other ranks wait in a collective while rank 0 runs the warm start.
- A world of one is this same object with every collective a no-op: the loop has one path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch

TIMEOUT = timedelta(hours=6)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @staticmethod
    def from_env() -> Dist:
        """The process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK), joined once;
        world 1 when not started by torchrun."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return Dist()
        import torch.distributed as td

        if not td.is_initialized():
            cuda = torch.cuda.is_available()
            if cuda:
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            td.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
        return Dist(td.get_rank(), td.get_world_size())

    def share(self, n: int) -> range:
        """This rank's contiguous part of n items (ranks in order; sizes differ by at most 1)."""
        step, extra = divmod(n, self.world)
        start = self.rank * step + min(self.rank, extra)
        return range(start, start + step + (self.rank < extra))

    def gather(self, obj) -> list:
        """Every rank's `obj` (picklable), in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        import torch.distributed as td

        out: list = [None] * self.world
        td.all_gather_object(out, obj)
        return out

    def gather_to_main(self, obj) -> list | None:
        """Every rank's `obj`, in rank order, on the main rank alone (None on the others)."""
        if self.world == 1:
            return [obj]
        import torch.distributed as td

        out: list | None = [None] * self.world if self.main else None
        td.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj):
        """Rank 0's `obj`, on every rank."""
        if self.world == 1:
            return obj
        import torch.distributed as td

        box = [obj]
        td.broadcast_object_list(box, src=0)
        return box[0]

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Element-wise sum of float64 `values` over ranks."""
        if self.world == 1:
            return values
        import torch.distributed as td

        device = "cuda" if td.get_backend() == "nccl" else "cpu"  # nccl reduces GPU tensors
        t = torch.as_tensor(np.asarray(values, dtype=np.float64), device=device)
        td.all_reduce(t)
        return t.cpu().numpy()

    def reduce_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Sum every parameter's gradient over ranks, in one flat buffer. A rank whose rows left
        a parameter untouched adds zeros; a parameter untouched on every rank keeps no gradient."""
        if self.world == 1:
            return
        import torch.distributed as td

        params = [p for p in params if p.requires_grad]
        if not params:
            return
        device = params[0].device
        present = torch.tensor([p.grad is not None for p in params], device=device).float()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1).float() for g in grads])
        td.all_reduce(flat)
        td.all_reduce(present)
        offset = 0
        for p, g, seen in zip(params, grads, present.tolist()):
            size = g.numel()
            p.grad = flat[offset : offset + size].view_as(p).to(p.dtype) if seen else None
            offset += size

    def broadcast_params(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Every rank takes rank 0's values of `params` (in place)."""
        if self.world == 1:
            return
        import torch.distributed as td

        with torch.no_grad():
            for p in params:
                td.broadcast(p.data, src=0)

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as td

            td.barrier()

    def close(self, wait: bool = True) -> None:
        """Leave the process group; with `wait` (a normal end) once every rank is done, so that
        none leaves while another still talks to it."""
        if self.world > 1:
            import torch.distributed as td

            if td.is_initialized():
                if wait:
                    td.barrier()
                td.destroy_process_group()


ONE = Dist()
"""One process: every collective a no-op."""
