"""The policy's likelihood score of a skill, and retrieval re-ranked by it.

score(s | x) = mean over the skill's tokens of log pi(s | reduced input of x), where the reduced
input is the task alone (no trajectories; `induce.reduced_prompt`) and s is the skill in the
three-line form a writer answers in (METHOD.md section 3, step 10). It is context-dependent: the
same skill scores differently for different tasks, and it moves as the policy trains.

Retrieval: cosine similarity of the task's embedding to each bank skill, the best 2k kept, then
re-ranked by similarity + lambda_r * score and cut to k (similarity alone without scoring).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from skillvet.policy.hf import Policy
from skillvet.skills.induce import reduced_prompt
from skillvet.skills.text import Skill


@torch.no_grad()
def likelihood(
    policy: Policy, pairs: Sequence[tuple[str, Skill]], batch_size: int = 32
) -> np.ndarray:
    """Mean token log-probability of each (task goal, skill) pair's skill given the goal."""
    out = np.zeros(len(pairs), dtype=np.float64)
    prompts = {g: policy.encode_prompt(reduced_prompt(g)) for g in {g for g, _ in pairs}}
    answers = {s: policy.encode_answer(s.lines()) for s in {s for _, s in pairs}}
    was_training = policy.model.training
    policy.model.eval()
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        logp, _, mask = policy.token_logprobs(
            [prompts[g] for g, _ in chunk], [answers[s] for _, s in chunk]
        )
        out[start : start + len(chunk)] = ((logp * mask).sum(-1) / mask.sum(-1)).cpu().numpy()
    policy.model.train(was_training)
    return out


def similar(query_QD: np.ndarray, bank_SD: np.ndarray, n: int) -> list[list[int]]:
    """For each query, the indices of the n bank skills of highest cosine similarity, best first."""
    if n == 0 or bank_SD.shape[0] == 0:
        return [[] for _ in range(query_QD.shape[0])]
    sim_QS = query_QD @ bank_SD.T
    return [[int(i) for i in np.argsort(-row, kind="stable")[:n]] for row in sim_QS]


def rerank(
    pool: Sequence[int], similarity: Sequence[float], scores: Sequence[float], weight: float, k: int
) -> list[int]:
    """The k best of `pool` by similarity + weight * score (stable: ties keep the pool's order)."""
    combined = np.asarray(similarity, dtype=np.float64) + weight * np.asarray(
        scores, dtype=np.float64
    )
    order = np.argsort(-combined, kind="stable")
    return [int(pool[i]) for i in order[:k]]
