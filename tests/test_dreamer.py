"""Dreamer (DreamerV3): the maths (symlog, two-hot, unimix, KL balance, λ-returns, return scale) against hand-computed
values; the RSSM's shapes; the world model learns; the agent beats random on a small task; save/load, errors."""

import math

import pytest
import torch

from sb3_latent.algos.dreamer.distributions import (
    ReturnNormalizer,
    TwoHotSymexp,
    categorical_kl,
    kl_balance,
    lambda_return,
    make_bins,
    onehot_straight_through,
    symexp,
    symlog,
    twohot,
    unimix_logits,
)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --- maths ------------------------------------------------------------------------------------------------


def test_symlog_values_and_symexp_inverts_it() -> None:
    x = torch.tensor([-1000.0, -math.e + 1, -1.0, 0.0, 0.5, 1e4])
    assert torch.allclose(symlog(x)[1:3], torch.tensor([-1.0, -math.log(2)]))
    assert symlog(torch.tensor(0.0)) == 0 and symlog(torch.tensor(1e4)) < 9.22
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-5)


def test_twohot_puts_the_mass_on_the_two_neighbouring_bins() -> None:
    bins = make_bins(9)  # -20, -15, ..., 20 (the slides' example uses 9 bins)
    assert torch.allclose(bins, torch.arange(-20.0, 21.0, 5.0))
    w = twohot(torch.tensor([-18.75, 3.0, 5.0, 25.0]), bins)
    assert torch.allclose(w[0, :2], torch.tensor([0.75, 0.25])) and w[0, 2:].sum() == 0
    assert torch.allclose(w[1, 4:6], torch.tensor([0.4, 0.6])) and w[1].sum() == 1
    assert w[2, 5] == 1 and w[2].sum() == 1  # exactly on a bin: all of it there
    assert w[3, -1] == 1  # beyond the range: the edge bin
    # the slides' worked example: loss = -(0.75 log p0 + 0.25 log p1)
    probs = torch.tensor([0.20, 0.15, 0.01, 0.30, 0.11, 0.20, 0.01, 0.01, 0.01])
    d = TwoHotSymexp(probs.log(), bins)
    y = symexp(torch.tensor(-18.75))
    assert math.isclose(float(d.log_prob(y)), 0.75 * math.log(0.20) + 0.25 * math.log(0.15), rel_tol=1e-4)


def test_twohot_expectation_returns_the_value() -> None:
    bins = make_bins()  # 255 bins over ±20 in symlog space
    y = torch.tensor([-3000.0, -1.5, 0.0, 0.3, 42.0, 1e6])
    target = twohot(symlog(y), bins)
    d = TwoHotSymexp(torch.log(target + 1e-30), bins)  # logits that reproduce the two-hot
    assert torch.allclose(d.mean(), y, rtol=1e-4, atol=1e-5)
    assert torch.allclose(target @ bins, symlog(y), atol=1e-5)


def test_unimix_keeps_one_percent_spread_over_all_classes() -> None:
    logits = torch.tensor([[100.0, 0.0, 0.0, 0.0]])
    p = unimix_logits(logits, 0.01).exp()
    assert torch.allclose(p, torch.tensor([[0.99 + 0.0025, 0.0025, 0.0025, 0.0025]]), atol=1e-6)
    assert torch.allclose(unimix_logits(logits, 0.0).exp(), logits.softmax(-1))


def test_straight_through_sample_is_one_hot_with_the_probabilities_gradient() -> None:
    logits = torch.tensor([[0.1, 2.0, -1.0]], requires_grad=True)
    lp = unimix_logits(logits)
    z = onehot_straight_through(lp, sample=False)
    assert torch.equal(z.detach(), torch.tensor([[0.0, 1.0, 0.0]]))
    (z * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    probs = lp.exp().detach()
    # d/dlogits sum_k c_k p_k with p = 0.99 softmax + 0.01/3
    c = torch.tensor([1.0, 2.0, 3.0])
    sm = logits.detach().softmax(-1)
    expected = 0.99 * sm * (c - (sm * c).sum())
    assert torch.allclose(logits.grad, expected, atol=1e-6) and torch.allclose(probs.sum(), torch.tensor(1.0))
    samples = onehot_straight_through(lp.detach().expand(4000, 3)).sum(0) / 4000
    assert torch.allclose(samples, probs[0], atol=0.03)


def test_kl_balance_and_free_bits_on_fixed_tensors() -> None:
    post = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]]).clamp(min=1e-8).log()  # 2 categoricals of 3
    prior = torch.tensor([[0.2, 0.5, 0.3], [0.25, 0.25, 0.5]]).log()
    p, q = post.exp(), prior.exp()
    hand = float((p * (p.log() - q.log())).sum())  # ≈ 0.6215 + 0.6931
    assert math.isclose(float(categorical_kl(post, prior)), hand, rel_tol=1e-5)
    dyn, rep = kl_balance(post[None], prior[None], free=1.0)  # KL ≈ 1.31 > 1: no clipping
    assert math.isclose(float(dyn), hand, rel_tol=1e-5) and math.isclose(float(rep), hand, rel_tol=1e-5)
    dyn, rep = kl_balance(post[None], prior[None], free=2.0)  # below the free bits: clipped, no gradient
    assert float(dyn) == 2.0 and float(rep) == 2.0
    # the gradients go apart: dyn trains only the prior, rep only the posterior
    a, b = post.clone().requires_grad_(True), prior.clone().requires_grad_(True)
    dyn, _ = kl_balance(a[None], b[None])
    dyn.sum().backward()
    assert a.grad is None or a.grad.abs().sum() == 0
    assert b.grad is not None and b.grad.abs().sum() > 0
    a, b = post.clone().requires_grad_(True), prior.clone().requires_grad_(True)
    _, rep = kl_balance(a[None], b[None])
    rep.sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0 and (b.grad is None or b.grad.abs().sum() == 0)


def test_lambda_return_matches_a_hand_computed_example_with_continuation_flags() -> None:
    rewards = torch.tensor([1.0, 2.0, 3.0])  # r_1..r_3
    values = torch.tensor([0.0, 10.0, 20.0, 30.0])  # v_0..v_3
    cont = torch.tensor([1.0, 0.0, 1.0])  # s_2 is terminal: nothing after it counts
    g, lam = 0.9, 0.5
    r2 = 3.0 + g * 1.0 * 30.0  # R_2 = r_3 + γ c_3 v_3 (R_3 = v_3)
    r1 = 2.0 + g * 0.0 * ((1 - lam) * 20.0 + lam * r2)  # = 2
    r0 = 1.0 + g * 1.0 * ((1 - lam) * 10.0 + lam * r1)
    out = lambda_return(rewards[:, None], values[:, None], cont[:, None], g, lam)[:, 0]
    assert torch.allclose(out, torch.tensor([r0, r1, r2]))
    assert torch.allclose(out, torch.tensor([1.0 + 0.9 * (5.0 + 1.0), 2.0, 30.0]))
    with pytest.raises(ValueError, match="H \\+ 1 values"):
        lambda_return(rewards, values[:3], cont, g, lam)


def test_return_scale_is_an_ema_of_the_5_to_95_percentile_range_limited_below_by_1() -> None:
    norm = ReturnNormalizer(decay=0.99)
    returns = torch.arange(101.0)  # percentiles 5 and 95: 5 and 95
    scale = norm.update(returns)
    assert math.isclose(float(norm.low_ema), 0.05, rel_tol=1e-6)
    assert math.isclose(float(norm.high_ema), 0.95, rel_tol=1e-6)
    assert float(scale) == 1.0  # range 0.9 < limit 1
    for _ in range(2000):
        scale = norm.update(returns)
    assert math.isclose(float(scale), 90.0, rel_tol=1e-3)
    assert float(ReturnNormalizer().update(torch.full((10,), 0.3))) == 1.0  # small returns are not scaled up
