"""SAPO's settings (`skills:` in a recipe), beside the skill bank they steer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from skillvet.configerror import require as _require


@dataclass
class SkillsConfig:
    enabled: bool = False
    """SAPO: a vetted skill bank; each task's N rollouts split into a base and a skill-augmented
    half."""
    cluster_size: int = 4
    """K: related tasks (same task type) that share one candidate skill; divides
    train.tasks_per_iteration."""
    top_k: int = 3
    """Skills retrieved from the bank for each task."""
    match_type: bool = True
    """Retrieve only skills whose task types include the task's type (skills without types always
    qualify); false: similarity over the whole bank, as in the paper."""
    embedder: str = "all-MiniLM-L6-v2"
    """Sentence embeddings for retrieval and novelty: all-MiniLM-L6-v2 (extra `embed`) or a local
    sentence-transformers folder."""
    writer: Literal["schedule", "teacher", "policy"] = "schedule"
    """Who writes candidates: the teacher, the policy, or the teacher first with a policy share
    rising linearly to 1 over `policy_ramp` of training."""
    policy_ramp: float = 0.5
    """Share of training over which the policy's writing share rises from 0 to 1 (writer:
    schedule)."""
    teacher: Literal["rule", "http"] = "rule"
    """The teacher: the offline rule inducer, or a chat-completions API (falls back to the rule
    inducer on failure)."""
    teacher_url: str = "http://127.0.0.1:8000/v1"
    """Base URL of the OpenAI-compatible API (teacher: http)."""
    teacher_model: str = "teacher"
    """Model name sent to the API."""
    teacher_key_env: str = ""
    """Environment variable holding the API key, sent as a bearer token (empty: no key). Never sent
    over plain http to a host other than this machine."""
    teacher_timeout: float = 30.0
    """Seconds one API call may take in all (connecting, sending and reading the whole answer)."""
    teacher_max_bytes: int = 1_000_000
    """Largest answer body read from the API; a longer one is a teacher failure."""
    teacher_retries: int = 2
    """Retries after a failed call, with exponential backoff (1 s, 2 s, ...)."""
    promote_every: int = 5
    """P: iterations between promotions from the candidates (Q) into the bank (B)."""
    promote_top: float = 0.2
    """rho: only the top share of candidates by utility U can be promoted."""
    novelty: float = 0.8
    """gamma: a candidate whose cosine similarity to a bank skill reaches this is not novel."""
    capacity: int = 45
    """Most skills in the bank; the lowest-scoring are pruned beyond it."""
    require_lcb: bool = False
    """Promote only when the lower confidence bound of U is above 0 (evidence, not a point
    estimate)."""
    confidence: float = 0.9
    """Level of the confidence interval on U (Student t over the tasks' u)."""
    placebo: bool = False
    """Each iteration, also play the first cluster's tasks (N/2 rollouts each, the base half's
    seeds) with a neutral skill as long as its candidate, and log its U as skills_placebo_U: the
    effect of a block's line being there, whatever it says (these rollouts train nothing)."""
    revet: bool = False
    """Measure a candidate that passes the gate again on K fresh tasks of its types with fresh
    seeds, and promote it only if it passes there too (beyond the paper: U on the tasks it was
    induced from is optimistic)."""
    gate: bool = True
    """The utility gate; false stores every candidate (ablation: no gate)."""
    scoring: bool = True
    """Likelihood scoring for re-ranking and pruning; false ranks by similarity only (ablation: no
    scoring)."""
    rerank_weight: float = 0.1
    """lambda_r in score = similarity + lambda_r * length-normalised log-likelihood."""
    prune_window: int = 10
    """Iterations whose tasks make a bank skill's pruning score (its mean likelihood over the recent
    tasks of its types)."""
    prune_margin: float = 1.0
    """A bank skill whose mean likelihood score falls below the bank's median minus this is
    pruned."""
    gen_coef: float = 0.1
    """lambda_gen: weight of the generator loss on policy-written skill tokens."""
    gen_discard_weight: float = 0.5
    """w = -this * |U| for policy-written skills with U <= 0 (w = U for promoted ones with U > 0, 0
    for those with U > 0 that lost only on rank, novelty or lower bound); the weights of a round
    are then scaled to sum |w| = 1."""
    max_skill_tokens: int = 96
    """Tokens the policy may spend writing one skill."""
    max_skill_chars: int = 400
    """Characters one skill may take in a prompt (longer skill text is cut)."""
    max_block_chars: int = 1200
    """Characters the whole skills block may take in a prompt."""

    def __post_init__(self) -> None:
        _require(self.cluster_size >= 1, "skills.cluster_size", "must be >= 1")
        _require(self.top_k >= 0, "skills.top_k", "must be >= 0")
        _require(0.0 < self.policy_ramp <= 1.0, "skills.policy_ramp", "must be in (0, 1]")
        _require(self.promote_every >= 1, "skills.promote_every", "must be >= 1")
        _require(0.0 < self.promote_top <= 1.0, "skills.promote_top", "must be in (0, 1]")
        _require(0.0 < self.novelty <= 1.0, "skills.novelty", "must be in (0, 1]")
        _require(self.capacity >= 1, "skills.capacity", "must be >= 1")
        _require(self.prune_window >= 1, "skills.prune_window", "must be >= 1")
        _require(0.0 < self.confidence < 1.0, "skills.confidence", "must be in (0, 1)")
        _require(self.teacher_retries >= 0, "skills.teacher_retries", "must be >= 0")
        _require(self.teacher_timeout > 0, "skills.teacher_timeout", "must be > 0")
        _require(self.max_skill_chars >= 40, "skills.max_skill_chars", "must be >= 40")
        _require(
            self.max_block_chars >= self.max_skill_chars,
            "skills.max_block_chars",
            "must be >= skills.max_skill_chars",
        )
