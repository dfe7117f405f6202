"""Policy-gradient losses as pure torch functions over padded token tensors.

Shapes: B rows (one agent step each), T response tokens; `mask_BT` is 1 on response tokens and 0
on padding. Advantages are one per row (`adv_B`), broadcast to every token of the row.

Choices (GiGPO's learner, METHOD.md section 2.7):
- PPO clip with per-token ratios pi / pi_old, clip range eps (0.2).
- KL(pi || pi_ref) as a loss term with the low-variance "k3" estimator
  exp(ref - logp) - (ref - logp) - 1, which is >= 0 and unbiased for the KL.
- Token-mean aggregation: every response token in the batch weighs the same.
- An optional entropy bonus is subtracted from the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def token_mean(values_BT: torch.Tensor, mask_BT: torch.Tensor) -> torch.Tensor:
    """Mean over the response tokens of the batch; padding does not count."""
    mask = mask_BT.to(values_BT.dtype)
    return (values_BT * mask).sum() / mask.sum().clamp(min=1.0)


def kl_k3(logp_BT: torch.Tensor, ref_logp_BT: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi || pi_ref) from sampled-token log-probs (>= 0)."""
    log_ratio = (ref_logp_BT - logp_BT).clamp(-20.0, 20.0)  # guards exp against overflow
    return torch.exp(log_ratio) - log_ratio - 1.0


def kl_full(logp_BTV: torch.Tensor, other_logp_BTV: torch.Tensor) -> torch.Tensor:
    """Per-token KL(p || q) over the whole vocabulary, from the log-softmax of each (>= 0)."""
    return (logp_BTV.exp() * (logp_BTV - other_logp_BTV)).sum(-1)


def ppo_clip_terms(
    logp_BT: torch.Tensor, old_logp_BT: torch.Tensor, adv_B: torch.Tensor, clip_eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token clipped surrogate loss max(-A r, -A clip(r, 1-eps, 1+eps)), and where it
    clipped."""
    ratio = torch.exp(logp_BT - old_logp_BT)
    adv = adv_B.to(logp_BT.dtype).unsqueeze(-1)
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)
    return torch.maximum(unclipped, clipped), (clipped > unclipped)


def entropy_from_logits(logits_BTV: torch.Tensor) -> torch.Tensor:
    """Per-token entropy of the sampling distribution."""
    logp = torch.log_softmax(logits_BTV.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def truncated_is_weights(
    learner_logp_BT: torch.Tensor, sampler_logp_BT: torch.Tensor, cap: float
) -> torch.Tensor:
    """Per-token min(pi_learner / pi_sampler, cap): truncated importance sampling of tokens that
    another engine sampled (verl's TIS)."""
    log_ratio = (learner_logp_BT - sampler_logp_BT).clamp(max=20.0)
    return torch.exp(log_ratio).clamp(max=cap)


def sampler_mismatch(
    learner_logp_BT: torch.Tensor, sampler_logp_BT: torch.Tensor, mask_BT: torch.Tensor
) -> tuple[float, float]:
    """(mean |log pi_learner - log pi_sampler|, k3 estimate of KL(sampler || learner)) over the
    response tokens: how far the sampling engine's log-probs are from the learner's."""
    diff = (learner_logp_BT - sampler_logp_BT).abs()
    return (
        float(token_mean(diff, mask_BT)),
        float(token_mean(kl_k3(sampler_logp_BT, learner_logp_BT), mask_BT)),
    )


@dataclass
class LossParts:
    loss: torch.Tensor
    """What to backpropagate."""
    pg: float
    kl: float
    entropy: float
    clip_fraction: float

    def values(self) -> dict[str, float]:
        """The parts as numbers: loss, pg, kl, entropy, clip_fraction."""
        return {
            "loss": float(self.loss.detach()),
            "pg": self.pg,
            "kl": self.kl,
            "entropy": self.entropy,
            "clip_fraction": self.clip_fraction,
        }


def policy_loss(
    logp_BT: torch.Tensor,
    old_logp_BT: torch.Tensor,
    ref_logp_BT: torch.Tensor | None,
    adv_B: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    clip_eps: float = 0.2,
    kl_coef: float = 0.01,
    entropy_BT: torch.Tensor | None = None,
    entropy_coef: float = 0.0,
    is_weight_BT: torch.Tensor | None = None,
) -> LossParts:
    """PPO clip + kl_coef * KL_k3 - entropy_coef * entropy, each token-mean aggregated.

    `is_weight_BT` (truncated importance sampling): a constant weight on each token's
    policy-gradient term, min(pi_old / pi_sampler, cap) when another engine sampled the tokens.
    """
    pg_BT, clipped_BT = ppo_clip_terms(logp_BT, old_logp_BT, adv_B, clip_eps)
    if is_weight_BT is not None:
        pg_BT = pg_BT * is_weight_BT.detach()
    pg = token_mean(pg_BT, mask_BT)
    loss = pg
    kl = torch.zeros((), dtype=pg.dtype)
    if ref_logp_BT is not None and kl_coef > 0:
        kl = token_mean(kl_k3(logp_BT, ref_logp_BT), mask_BT)
        loss = loss + kl_coef * kl
    ent = torch.zeros((), dtype=pg.dtype)
    if entropy_BT is not None:
        ent = token_mean(entropy_BT, mask_BT)
        if entropy_coef:
            loss = loss - entropy_coef * ent
    return LossParts(
        loss=loss,
        pg=float(pg.detach()),
        kl=float(kl.detach()),
        entropy=float(ent.detach()),
        clip_fraction=float(token_mean(clipped_BT.to(pg_BT.dtype), mask_BT)),
    )
