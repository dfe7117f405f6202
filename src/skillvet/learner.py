"""From episodes to one policy update: per-step rewards, advantages, and the PPO-clip + KL step.

Choices:
- A crashed episode (environment error) is left out of the update: its outcome is unknown.
- Rewards as in GiGPO's reference (METHOD.md section 2): an invalid action costs
  `algo.invalid_penalty` on its own step. Episode score of a row = the trajectory's return
  minus that row's penalty; step return = discounted env rewards from the row on, minus its
  penalty. GRPO and RLOO score whole trajectories: each row of a trajectory gets its return
  with all of its penalties; GRPO normalises by the group's trajectory statistics, RLOO
  subtracts the leave-one-out mean.
- The old log-probs of the PPO ratio are the sampling log-probs recorded by the rollout: the
  same tokens, the same weights and the same positions, so they equal a recomputation
  (tests/test_policy.py); with more than one epoch or mini-batch the ratio moves off 1 and
  clipping acts.
- Token-mean over each mini-batch: micro-batch losses are weighted by their share of the
  mini-batch's response tokens, so accumulation gives the same gradient as one big batch.
- Micro-batches hold rows of one context (a task group and the skills it was shown), so the
  policy computes their shared prompt head once (`skillvet.policy.hf`): SAPO's longer prompts
  are longer in that head, and cost little more than GiGPO's.
- The sampler's log-probs against the learner's: with the HF sampler (`exact`) they are the
  same model's, compared on the first mini-batch before any step (a check that costs nothing);
  with another engine (vLLM) the learner recomputes every row's log-probs before the update,
  the PPO ratio uses those, and each token's policy-gradient term is weighted by
  min(pi_learner / pi_sampler, algo.tis_cap) (truncated importance sampling, as verl does).
  Both log `mismatch_abs` (mean |difference|) and `mismatch_kl` (k3 KL(sampler || learner)).
- Rows that carry no gradient are not computed: with no KL and no entropy term
  (`algo.kl_coef` and `train.entropy_coef` 0) a row's whole loss is its clipped
  policy-gradient term, which is 0 with its gradient when its advantage is exactly 0 (every row
  of a group whose episodes all scored alike, under GRPO and GiGPO). The token weights keep the
  whole mini-batch's count and a mini-batch left empty still steps with zero gradients, so the
  update is the one computing them would give; `rows_skipped` reports their share.
- A non-finite loss or gradient norm raises `NonFiniteLoss` before the optimizer steps, so the
  weights and the last checkpoint stay as they were.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from skillvet import fsdp
from skillvet.advantages import (
    anchor_groups,
    discounted_returns,
    episode_advantages,
    gigpo_advantages,
    rloo_advantages,
)
from skillvet.config import AlgoConfig, TrainConfig
from skillvet.distributed import ONE, Dist
from skillvet.losses import LossParts, policy_loss, sampler_mismatch, truncated_is_weights
from skillvet.policy.hf import Policy
from skillvet.types import Episode, GeneratorRows


class NonFiniteLoss(RuntimeError):
    """The loss or the gradient became NaN or infinite; the update was not applied."""


@dataclass
class Rows:
    """One row per agent step of the episodes that count, with its advantage."""

    prompts: list[list[int]]
    responses: list[list[int]]
    old_logprobs: list[list[float]]
    advantages: np.ndarray
    step_group_sizes: np.ndarray
    """Size of each row's step group (GiGPO; 1 for the other estimators)."""
    contexts: np.ndarray | None = None
    """Each row's context: rows of one task group shown the same skills share their prompt's
    head (chat header, task, skills block), so the learner batches them together."""
    groups: np.ndarray | None = None
    """Each row's episode group (the task it played)."""
    allowed: list[list[list[int]] | None] | None = None
    """Rows held to the admissible actions: the ids each token was drawn among (`Step.allowed`);
    the learner scores them under the same restriction."""

    def allowed_of(self, idx: Sequence[int]) -> list[list[list[int]] | None] | None:
        return [self.allowed[i] for i in idx] if self.allowed is not None else None


def zero_signal_share(advantages_N: np.ndarray, groups_N: np.ndarray, tol: float = 1e-9) -> float:
    """Share of episode groups whose every row has advantage 0 (|A| <= tol): groups whose
    rollouts all scored alike, from which the policy-gradient term learns nothing."""
    if len(advantages_N) == 0:
        return 1.0
    _, group_N = np.unique(groups_N, return_inverse=True)
    peak_G = np.zeros(group_N.max() + 1)
    np.maximum.at(peak_G, group_N, np.abs(advantages_N))
    return float((peak_G <= tol).mean())


def compute_advantages(episodes: Sequence[Episode], algo: AlgoConfig) -> Rows:
    """Advantages of every step of every episode that did not crash."""
    used = [e for e in episodes if e.error is None and e.steps]
    prompts, responses, olds, allowed = [], [], [], []
    rewards, penalties, traj, time, groups, anchors, contexts = [], [], [], [], [], [], []
    returns_by_traj = []
    context_ids: dict[tuple, int] = {}
    for k, e in enumerate(used):
        context = context_ids.setdefault((e.group, e.skills), len(context_ids))
        for t, s in enumerate(e.steps):
            prompts.append(s.prompt_ids)
            responses.append(s.response_ids)
            olds.append(s.logprobs)
            allowed.append(s.allowed)
            rewards.append(s.reward)
            penalties.append(0.0 if s.valid else algo.invalid_penalty)
            traj.append(k)
            time.append(t)
            groups.append(e.group)
            anchors.append(s.anchor)
            contexts.append(context)
        returns_by_traj.append(e.reward)
    n = len(prompts)
    if n == 0:
        empty = np.zeros(0)
        return Rows(
            [],
            [],
            [],
            empty,
            empty.astype(np.int64),
            empty.astype(np.int64),
            empty.astype(np.int64),
        )
    traj_N = np.asarray(traj)
    penalty_N = np.asarray(penalties)
    score_N = np.asarray(returns_by_traj)[traj_N] - penalty_N
    sizes_N = np.ones(n, dtype=np.int64)
    if algo.estimator == "gigpo":
        step_groups = anchor_groups(anchors, groups, similarity=algo.similarity)
        sizes_N = np.bincount(step_groups)[step_groups]
        step_return_N = discounted_returns(rewards, traj_N, time, algo.gamma) - penalty_N
        adv = gigpo_advantages(
            score_N,
            step_return_N,
            anchors,
            groups,
            traj_N,
            step_weight=algo.step_weight,
            norm=algo.norm,
            eps=algo.eps,
            episode_stats=algo.episode_stats,
            step_groups=step_groups,
        )
    elif algo.estimator in ("grpo", "rloo"):
        # one score per trajectory, given to each of its rows: its return with every penalty it
        # earned (a row's own penalty alone would make rows of one trajectory differ, and
        # dividing those by the trajectories' spread blows them up in all-fail groups)
        traj_score_T = np.asarray(returns_by_traj) - np.bincount(
            traj_N, weights=penalty_N, minlength=len(used)
        )
        if algo.estimator == "grpo":
            adv = episode_advantages(
                traj_score_T[traj_N],
                groups,
                traj_N,
                norm=algo.norm,
                eps=algo.eps,
                episode_stats="trajectories",
            )
        else:
            adv = rloo_advantages(traj_score_T, [e.group for e in used])[traj_N]
    else:
        raise ValueError(f"unknown estimator {algo.estimator!r}")
    return Rows(
        prompts,
        responses,
        olds,
        np.asarray(adv, dtype=np.float64),
        sizes_N,
        np.asarray(contexts),
        np.asarray(groups),
        allowed if any(a is not None for a in allowed) else None,
    )


def with_gradient(
    rows: Rows, idx: Sequence[int], algo: AlgoConfig, train: TrainConfig
) -> list[int]:
    """The rows of `idx` whose loss has a gradient: all of them, or with no KL and no entropy
    term, those whose advantage is not exactly 0."""
    if algo.kl_coef > 0 or train.entropy_coef != 0:
        return list(idx)
    return [i for i in idx if rows.advantages[i] != 0.0]


def micro_batches(rows: Rows, mini: Sequence[int], size: int) -> list[list[int]]:
    """The rows of a mini-batch in micro-batches of at most `size`: rows of one context together
    (their shared prompt head is computed once), each context split evenly, shortest rows first."""
    contexts = (
        rows.contexts if rows.contexts is not None else np.zeros(len(rows.prompts), dtype=np.int64)
    )
    by_context: dict[int, list[int]] = {}
    for i in sorted(
        mini, key=lambda i: (contexts[i], len(rows.prompts[i]) + len(rows.responses[i]))
    ):
        by_context.setdefault(int(contexts[i]), []).append(int(i))
    return [
        [int(i) for i in chunk]
        for group in by_context.values()
        for chunk in np.array_split(group, math.ceil(len(group) / size))
    ]


def _right_aligned(values: Sequence[Sequence[float]], width: int) -> torch.Tensor:
    out = torch.zeros((len(values), width), dtype=torch.float32)
    for i, v in enumerate(values):
        if v:
            out[i, width - len(v) :] = torch.tensor(v, dtype=torch.float32)
    return out


def _generator_backward(policy: Policy, rows: GeneratorRows, temperature: float) -> float:
    """Backpropagate the generator loss; returns its value."""
    logp, _, mask = policy.token_logprobs(rows.prompts, rows.responses, temperature)
    mean_S = (logp * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
    weights = torch.tensor(rows.weights, dtype=torch.float32, device=logp.device)
    loss = -rows.coef * (weights * mean_S).sum()
    if not torch.isfinite(loss):
        raise NonFiniteLoss(
            f"the generator loss is {float(loss.detach())}; the update was not applied"
        )
    loss.backward()
    return float(loss.detach())


@torch.no_grad()
def _learner_logprobs(
    policy: Policy, rows: Rows, size: int, temperature: float
) -> tuple[list[list[float]], np.ndarray]:
    """The learner's log-probs of every row's sampled tokens, and the sums of their mismatch
    with the sampler's (|difference|, k3 KL) over all tokens, with the token count."""
    out: list[list[float]] = [[] for _ in rows.prompts]
    abs_sum = kl_sum = tokens = 0.0
    for idx in micro_batches(rows, range(len(rows.prompts)), size):
        responses = [rows.responses[i] for i in idx]
        logp, _, mask = policy.token_logprobs(
            [rows.prompts[i] for i in idx], responses, temperature, allowed=rows.allowed_of(idx)
        )
        sampled = _right_aligned([rows.old_logprobs[i] for i in idx], logp.shape[1])
        count = float(mask.sum())
        diff, kl = sampler_mismatch(logp, sampled.to(logp.device), mask)
        abs_sum, kl_sum, tokens = abs_sum + diff * count, kl_sum + kl * count, tokens + count
        for b, (i, r) in enumerate(zip(idx, responses)):
            out[i] = logp[b, logp.shape[1] - len(r) :].tolist() if r else []
    return out, np.array([abs_sum, kl_sum, tokens])


def _old_logprobs(
    policy: Policy, rows: Rows, train: TrainConfig, temperature: float, exact_sampler: bool
) -> tuple[Sequence[Sequence[float]], np.ndarray]:
    """The PPO ratio's old log-probs, and the mismatch sums (|difference|, k3, tokens): the
    sampler's own with the HF sampler (the mismatch is summed on the first mini-batch), the
    learner's recomputed with another engine (the mismatch measured here, over all tokens)."""
    if exact_sampler:
        return rows.old_logprobs, np.zeros(3)
    return _learner_logprobs(policy, rows, train.micro_batch_size, temperature)


def _micro_batch_loss(
    policy: Policy,
    rows: Rows,
    idx: Sequence[int],
    olds: Sequence[Sequence[float]],
    train: TrainConfig,
    algo: AlgoConfig,
    temperature: float,
    exact_sampler: bool,
) -> tuple[LossParts, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The loss of one micro-batch of rows (with gradients), its log-probs (detached), old
    log-probs and mask."""
    prompts = [rows.prompts[i] for i in idx]
    responses = [rows.responses[i] for i in idx]
    allowed = rows.allowed_of(idx)
    logp, ent, mask = policy.token_logprobs(prompts, responses, temperature, True, allowed)
    width = logp.shape[1]
    old = _right_aligned([olds[i] for i in idx], width).to(logp.device)
    is_weight = None
    if not exact_sampler and algo.tis_cap > 0:
        sampled = _right_aligned([rows.old_logprobs[i] for i in idx], width)
        is_weight = truncated_is_weights(old, sampled.to(logp.device), algo.tis_cap)
    ref = None
    if algo.kl_coef > 0:
        ref = policy.ref_logprobs(prompts, responses, temperature, allowed)
    adv = torch.tensor(rows.advantages[idx], dtype=torch.float32, device=logp.device)
    parts = policy_loss(
        logp,
        old,
        ref,
        adv,
        mask,
        clip_eps=algo.clip_eps,
        kl_coef=algo.kl_coef,
        entropy_BT=ent,
        entropy_coef=train.entropy_coef,
        is_weight_BT=is_weight,
    )
    if not torch.isfinite(parts.loss):
        raise NonFiniteLoss(
            f"the loss is {float(parts.loss.detach())} (pg {parts.pg}, kl {parts.kl}); "
            "the update was not applied: lower train.lr or check the rewards"
        )
    return parts, logp.detach(), old, mask


def _idle_pass(
    policy: Policy, train: TrainConfig, algo: AlgoConfig, temperature: float,
    generator: bool = False,
) -> None:
    """The passes of a micro-batch (or with `generator`, of the generator loss) on a one-token
    row, its loss times 0: what a rank with fewer of them runs, so that FSDP's collectives
    line up across ranks. No gradient changes."""
    token = policy.tokenizer.eos_token_id or 0
    if generator:
        logp, _, _ = policy.token_logprobs([[token]], [[token]], temperature)
        (logp.sum() * 0.0).backward()
        return
    rows = Rows([[token]], [[token]], [[0.0]], np.zeros(1), np.ones(1, dtype=np.int64))
    parts, _, _, _ = _micro_batch_loss(policy, rows, [0], rows.old_logprobs, train, algo,
                                       temperature, True)
    (parts.loss * 0.0).backward()


def _generator_pass(
    policy: Policy, rows: GeneratorRows | None, train: TrainConfig, algo: AlgoConfig,
    temperature: float,
) -> float:
    """The generator loss's backward pass (the main rank's rows), or on a rank without rows,
    under FSDP, its idle twin; returns the loss."""
    if rows is not None:
        return _generator_backward(policy, rows, temperature)
    _idle_pass(policy, train, algo, temperature, generator=True)
    return 0.0


def _step(
    policy: Policy, optimizer: torch.optim.Optimizer, train: TrainConfig, dist: Dist,
    lockstep: bool, none_left: bool = False,
) -> float:
    """Sum the gradients over ranks (FSDP has, in the backward pass), clip them, step; returns
    the gradient norm before clipping. `none_left`: this rank's rows of the mini-batch all had
    no gradient and were not computed; the weights get the zeros they would have given, so the
    optimizer's moments step as they would have."""
    if none_left:
        for p in policy.parameters():
            if p.requires_grad and p.grad is None:
                p.grad = torch.zeros_like(p)
    if not lockstep:
        dist.reduce_grads(policy.parameters())
    total = torch.nn.utils.clip_grad_norm_(policy.parameters(), train.max_grad_norm)
    norm = float(total.full_tensor() if hasattr(total, "full_tensor") else total)  # FSDP: DTensor
    if not math.isfinite(norm):
        optimizer.zero_grad(set_to_none=True)
        raise NonFiniteLoss(
            f"the gradient norm is {norm}; the update was not applied: lower train.lr"
        )
    optimizer.step()
    return norm


def update(
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    rows: Rows,
    train: TrainConfig,
    algo: AlgoConfig,
    temperature: float,
    rng: np.random.Generator,
    generator_rows: GeneratorRows | None = None,
    exact_sampler: bool = True,
    dist: Dist = ONE,
) -> dict[str, float]:
    """PPO epochs over `rows`; returns token-weighted means of the loss parts.

    `generator_rows` (SAPO): the generator loss -coef * sum_s w_s * mean_token log pi(s | c) on
    policy-written skills, added to the first mini-batch's loss (METHOD.md section 3, step 8).
    `exact_sampler`: the rows' log-probs are the learner's own (the HF sampler); otherwise they
    are recomputed and the sampler's corrected by truncated importance sampling (`algo.tis_cap`).
    `dist` (several processes, `skillvet.distributed`): `rows` are this rank's; the mini-batches
    are drawn over all ranks' rows in rank order, each token weighs by its share of the whole
    mini-batch, and the gradients are summed over ranks before each step.
    """
    lengths = [len(r) for r in rows.responses]
    every = dist.gather(lengths)
    offset = sum(len(x) for x in every[: dist.rank])
    length_N = np.asarray([n for x in every for n in x], dtype=np.int64)
    n = len(length_N)
    totals = {"loss": 0.0, "pg": 0.0, "kl": 0.0, "entropy": 0.0, "clip_fraction": 0.0}
    grad_norms: list[float] = []
    gen_loss = 0.0
    if n == 0:
        return {
            **totals,
            "grad_norm": 0.0,
            "tokens": 0,
            "gen_loss": 0.0,
            "rows_skipped": 0.0,
            "mismatch_abs": 0.0,
            "mismatch_kl": 0.0,
        }
    policy.model.train()
    olds, mismatch = _old_logprobs(policy, rows, train, temperature, exact_sampler)
    lockstep = fsdp.is_sharded(policy)  # every rank runs as many passes (FSDP gathers in each)
    has_gen = dist.broadcast(generator_rows is not None) if lockstep else False
    steps = 0
    tokens_seen = skipped = 0
    for _ in range(train.epochs):
        order = rng.permutation(n)
        for mini in np.array_split(order, train.mini_batches):
            if len(mini) == 0:
                continue
            mini_tokens = int(length_N[mini].sum())
            mine = [int(i) - offset for i in mini if offset <= i < offset + len(lengths)]
            kept = with_gradient(rows, mine, algo, train)
            skipped += len(mine) - len(kept)
            optimizer.zero_grad(set_to_none=True)
            if steps == 0 and (generator_rows is not None or has_gen):
                gen_loss = _generator_pass(policy, generator_rows, train, algo, temperature)
            batches = micro_batches(rows, kept, train.micro_batch_size)
            for _ in range(max(dist.gather(len(batches))) - len(batches) if lockstep else 0):
                _idle_pass(policy, train, algo, temperature)
            for idx in batches:
                parts, logp, old, mask = _micro_batch_loss(
                    policy, rows, idx, olds, train, algo, temperature, exact_sampler
                )
                count = float(mask.sum())
                if exact_sampler and steps == 0:  # before any step: the sampler's own model
                    diff, kl = sampler_mismatch(logp, old, mask)
                    mismatch += (diff * count, kl * count, count)
                (parts.loss * count / max(mini_tokens, 1)).backward()
                for key, value in parts.values().items():
                    totals[key] += value * count
                tokens_seen += int(count)
            none_left = bool(mine) and not kept
            grad_norms.append(_step(policy, optimizer, train, dist, lockstep, none_left))
            steps += 1
    summed = dist.sum(np.array([*totals.values(), tokens_seen, skipped, *mismatch]))
    tokens_seen, skipped = int(summed[len(totals)]), int(summed[len(totals) + 1])
    mismatch = summed[len(totals) + 2 :]
    # a skipped row's loss is 0: loss, pg and kl are means over every token (each epoch passes
    # over all of them); entropy and the clip fraction over the tokens computed
    every = ("loss", "pg", "kl")
    all_tokens = int(length_N.sum()) * train.epochs
    out = {
        k: v / max(all_tokens if k in every else tokens_seen, 1) for k, v in zip(totals, summed)
    }
    out["grad_norm"] = float(np.mean(grad_norms)) if grad_norms else 0.0
    out["gen_loss"] = float(dist.sum(np.array([gen_loss]))[0])
    out["tokens"] = tokens_seen
    out["rows_skipped"] = skipped / (n * train.epochs)
    out["optimizer_steps"] = steps
    out["mismatch_abs"] = float(mismatch[0] / max(mismatch[2], 1.0))
    out["mismatch_kl"] = float(mismatch[1] / max(mismatch[2], 1.0))
    return out
