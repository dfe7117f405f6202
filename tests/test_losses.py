"""PPO clip, k3 KL and token-mean aggregation, against hand-worked values and a plain loop."""

import math

import pytest

torch = pytest.importorskip("torch")

from skillvet.losses import (  # noqa: E402
    entropy_from_logits,
    kl_full,
    kl_k3,
    policy_loss,
    ppo_clip_terms,
    token_mean,
)


def test_token_mean_ignores_padding():
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert token_mean(values, mask).item() == pytest.approx(2.0)


def test_full_kl_against_hand_worked_values():
    p = torch.log(torch.tensor([[[0.5, 0.5, 0.0 + 1e-30]]]))
    q = torch.log(torch.tensor([[[0.25, 0.25, 0.5]]]))
    assert kl_full(p, q).item() == pytest.approx(math.log(2.0))  # 0.5 log 2 + 0.5 log 2
    assert kl_full(p, p).item() == pytest.approx(0.0)
    assert kl_full(q, p).item() > 10  # q puts mass where p has none


def test_k3_is_zero_at_equality_nonnegative_and_matches_kl_in_expectation():
    logp = torch.log(torch.tensor([0.2, 0.5, 0.3]))
    assert torch.allclose(kl_k3(logp, logp), torch.zeros(3))
    ref = torch.log(torch.tensor([0.3, 0.3, 0.4]))
    assert (kl_k3(logp, ref) >= 0).all()
    # E_{x~pi}[k3] = KL(pi || ref)
    p = logp.exp()
    expected = (p * (logp - ref)).sum()
    assert (p * kl_k3(logp, ref)).sum().item() == pytest.approx(expected.item(), rel=1e-5)


def test_ppo_clip_by_hand():
    old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[1.5, 0.9]]))  # ratios 1.5 and 0.9
    # A > 0: the ratio 1.5 is clipped to 1.2 -> loss -1.2; 0.9 is inside -> -0.9
    loss, clipped = ppo_clip_terms(logp, old, torch.tensor([1.0]), 0.2)
    assert torch.allclose(loss, torch.tensor([[-1.2, -0.9]]))
    assert clipped.tolist() == [[True, False]]
    # A < 0: max(1.5, 1.2) = 1.5 is kept (no clipping on the pessimistic side); 0.9 -> max(0.9, 0.9)
    loss, _ = ppo_clip_terms(logp, old, torch.tensor([-1.0]), 0.2)
    assert torch.allclose(loss, torch.tensor([[1.5, 0.9]]))


def test_clipped_tokens_get_no_gradient():
    logp = torch.log(torch.tensor([[1.5, 1.1]])).requires_grad_(True)
    parts = policy_loss(
        logp, torch.zeros(1, 2), None, torch.tensor([2.0]), torch.ones(1, 2), kl_coef=0.0
    )
    parts.loss.backward()
    assert logp.grad[0, 0].item() == 0.0
    assert logp.grad[0, 1].item() < 0.0  # raising a positive-advantage token lowers the loss


def test_policy_loss_equals_a_plain_loop():
    g = torch.Generator().manual_seed(0)
    B, T = 5, 7
    logp = -torch.rand(B, T, generator=g) * 3
    old = logp + 0.3 * torch.randn(B, T, generator=g)
    ref = logp + 0.3 * torch.randn(B, T, generator=g)
    adv = torch.randn(B, generator=g)
    mask = (torch.rand(B, T, generator=g) > 0.3).float()
    mask[:, 0] = 1
    parts = policy_loss(logp, old, ref, adv, mask, clip_eps=0.2, kl_coef=0.05)
    total, count = 0.0, 0
    for b in range(B):
        for t in range(T):
            if mask[b, t] == 0:
                continue
            r = math.exp(logp[b, t] - old[b, t])
            a = adv[b].item()
            pg = max(-a * r, -a * min(max(r, 0.8), 1.2))
            d = (ref[b, t] - logp[b, t]).item()
            total += pg + 0.05 * (math.exp(d) - d - 1)
            count += 1
    assert parts.loss.item() == pytest.approx(total / count, rel=1e-5)


def test_entropy_of_uniform_and_peaked():
    uniform = torch.zeros(1, 1, 4)
    assert entropy_from_logits(uniform).item() == pytest.approx(math.log(4))
    peaked = torch.tensor([[[100.0, 0.0, 0.0, 0.0]]])
    assert entropy_from_logits(peaked).item() == pytest.approx(0.0, abs=1e-6)


def test_truncated_importance_weights_by_hand():
    from skillvet.losses import truncated_is_weights

    learner = torch.tensor([[0.0, math.log(3.0), -1.0]])
    sampler = torch.zeros(1, 3)
    w = truncated_is_weights(learner, sampler, cap=2.0)
    assert torch.allclose(w, torch.tensor([[1.0, 2.0, math.exp(-1.0)]]))


def test_sampler_mismatch_is_zero_at_equality_and_k3_of_a_constant_gap():
    from skillvet.losses import sampler_mismatch

    learner = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    assert sampler_mismatch(learner, learner.clone(), mask) == (0.0, 0.0)
    gap, kl = sampler_mismatch(learner, learner - 0.3, mask)  # the sampler 0.3 nats lower
    assert gap == pytest.approx(0.3) and kl == pytest.approx(math.exp(0.3) - 1 - 0.3)


def test_importance_weights_scale_each_tokens_policy_gradient_term():
    logp = torch.tensor([[-1.0, -1.2], [-0.7, -0.9]], requires_grad=True)
    old = logp.detach().clone()
    adv = torch.tensor([1.0, -2.0])
    mask = torch.ones(2, 2)
    weights = torch.tensor([[0.5, 2.0], [1.0, 0.0]])
    plain = policy_loss(logp, old, None, adv, mask, kl_coef=0.0)
    weighted = policy_loss(logp, old, None, adv, mask, kl_coef=0.0, is_weight_BT=weights)
    # at ratio 1 each token's term is -A; token-mean over the 4 tokens
    assert plain.pg == pytest.approx((-1 - 1 + 2 + 2) / 4)
    assert weighted.pg == pytest.approx((-0.5 - 2.0 + 2.0 + 0.0) / 4)
