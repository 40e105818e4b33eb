"""The maths of DreamerV3 (Hafner et al. 2023, "Mastering Diverse Domains through World Models"), as small
pure functions and modules: symlog / symexp (eq. 9-10), two-hot symexp distributions (eq. 11-12),
categoricals with 1% unimix and straight-through samples, KL balancing with free bits (eq. 5),
λ-returns with continuation flags (eq. 7) and the percentile return normaliser (eq. 8).

Every function works on tensors of any leading shape; the last axis is the distribution's.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def symlog(x: torch.Tensor) -> torch.Tensor:
    """``sign(x) log(|x| + 1)``: compresses large magnitudes, identity-like near 0 (eq. 9)."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: torch.Tensor) -> torch.Tensor:
    """``sign(x) (exp(|x|) - 1)``, the inverse of :func:`symlog` (eq. 10)."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


def make_bins(n: int = 255, low: float = -20.0, high: float = 20.0) -> torch.Tensor:
    """``n`` equally spaced bin centres in symlog space (DreamerV3: 255 over ±20)."""
    return torch.linspace(low, high, n)


def twohot(x: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Two-hot encoding of ``x`` (already in bin space) over sorted ``bins``: weights ``(..., n)`` on the two
    neighbouring bins, inversely proportional to the distance, so ``twohot(x) @ bins == x`` inside the range;
    values outside the range go wholly to the edge bin."""
    x = x.clamp(bins[0], bins[-1])
    above = torch.searchsorted(bins, x.detach().contiguous(), right=True).clamp(1, len(bins) - 1)
    below = above - 1
    lo, hi = bins[below], bins[above]
    w_hi = ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
    out = torch.zeros((*x.shape, len(bins)), dtype=x.dtype, device=x.device)
    out.scatter_(-1, below[..., None], (1.0 - w_hi)[..., None])
    return out.scatter_add_(-1, above[..., None], w_hi[..., None])


class TwoHotSymexp:
    """A distribution over real numbers from logits over bins in symlog space (eq. 11-12): the loss is the
    cross-entropy against ``twohot(symlog(y))``; the prediction ``symexp(softmax(logits) @ bins)``.

    :param logits: ``(..., n)`` logits, one per bin
    :param bins: ``(n,)`` bin centres in symlog space
    """

    def __init__(self, logits: torch.Tensor, bins: torch.Tensor) -> None:
        self.logits, self.bins = logits.float(), bins

    def mean(self) -> torch.Tensor:
        """The expected value, computed in symlog space then mapped back (as the official code)."""
        return symexp((self.logits.softmax(-1) * self.bins).sum(-1))

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """``twohot(symlog(y))^T log softmax(logits)`` (the negative of the loss)."""
        return (twohot(symlog(y.float()), self.bins) * self.logits.log_softmax(-1)).sum(-1)


def unimix_logits(logits: torch.Tensor, unimix: float = 0.01) -> torch.Tensor:
    """Log-probabilities of ``(1 - unimix) softmax(logits) + unimix / K``: a categorical that keeps at least
    ``unimix / K`` on every class, so KLs and log-probs stay finite (DreamerV3 §3, 1% unimix)."""
    probs = logits.float().softmax(-1)
    if unimix > 0:
        probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
    return probs.log()


def onehot_straight_through(logits: torch.Tensor, sample: bool = True) -> torch.Tensor:
    """A one-hot sample (or the mode) of ``Categorical(logits)`` with straight-through gradients: the value
    is one-hot, the gradient that of the probabilities (Bengio et al. 2013; DreamerV2 eq. 2).

    :param logits: normalised log-probabilities ``(..., K)`` (e.g. from :func:`unimix_logits`)
    :param sample: draw a sample; False: the most likely class
    """
    probs = logits.exp()
    if sample:  # inverse-CDF sampling: one uniform number per categorical
        u = torch.rand((*probs.shape[:-1], 1), device=probs.device, dtype=probs.dtype)
        idx = (probs.detach().cumsum(-1) < u).sum(-1).clamp(max=probs.shape[-1] - 1)
    else:
        idx = probs.argmax(-1)
    hard = F.one_hot(idx, probs.shape[-1]).to(probs.dtype)
    return hard + probs - probs.detach()


def categorical_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """``KL(p || q)`` of categoricals given by normalised log-probs ``(..., G, K)``, summed over the ``G``
    independent groups (latent variables) of the last two axes."""
    return (logits_p.exp() * (logits_p - logits_q)).sum((-2, -1))


def kl_balance(post: torch.Tensor, prior: torch.Tensor, free: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The dynamics and representation losses of eq. (5), per step:
    ``L_dyn = max(free, KL[sg(post) || prior])`` trains the prior towards the posterior,
    ``L_rep = max(free, KL[post || sg(prior)])`` the posterior towards the prior. Below ``free`` nats
    (free bits) a term has no gradient. Scales (0.5 / 0.1) are applied by the caller.

    :param post: posterior log-probs ``(..., G, K)``
    :param prior: prior log-probs ``(..., G, K)``
    :param free: free bits, in nats
    :return: ``(L_dyn, L_rep)``, each of the leading shape
    """
    dyn = categorical_kl(post.detach(), prior)
    rep = categorical_kl(post, prior.detach())
    return dyn.clamp(min=free), rep.clamp(min=free)


def lambda_return(
    rewards: torch.Tensor, values: torch.Tensor, continues: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    """λ-returns along imagined trajectories (eq. 7), time on the first axis:
    ``R_t = r_{t+1} + γ c_{t+1} ((1 - λ) v_{t+1} + λ R_{t+1})``, bootstrapped with ``R_H = v_H``.

    :param rewards: ``(H, ...)`` rewards ``r_1..r_H`` (received on reaching states ``s_1..s_H``)
    :param values: ``(H + 1, ...)`` values ``v_0..v_H``
    :param continues: ``(H, ...)`` continuation flags or probabilities ``c_1..c_H`` (0 after a terminal)
    :param gamma: discount
    :param lam: λ
    :return: ``(H, ...)`` returns ``R_0..R_{H-1}``
    """
    if not (len(rewards) == len(continues) == len(values) - 1):
        raise ValueError(
            f"need H rewards, H continues and H + 1 values, got {len(rewards)}, {len(continues)}, {len(values)}"
        )
    out, last = [], values[-1]
    for t in reversed(range(len(rewards))):
        last = rewards[t] + gamma * continues[t] * ((1.0 - lam) * values[t + 1] + lam * last)
        out.append(last)
    return torch.stack(out[::-1])


class ReturnNormalizer(nn.Module):
    """Return scale ``S = max(limit, EMA(Per(R, 95)) - EMA(Per(R, 5)))`` (eq. 8): the actor's advantages are
    divided by ``S``, so large returns are scaled down while small ones (sparse rewards) are not scaled up.

    :param decay: EMA decay of the percentiles (0.99)
    :param low: lower percentile, in [0, 1]
    :param high: upper percentile
    :param limit: smallest scale (1)
    """

    low_ema: torch.Tensor
    high_ema: torch.Tensor

    def __init__(self, decay: float = 0.99, low: float = 0.05, high: float = 0.95, limit: float = 1.0) -> None:
        super().__init__()
        self.decay, self.low, self.high, self.limit = decay, low, high, limit
        self.register_buffer("low_ema", torch.zeros(()))
        self.register_buffer("high_ema", torch.zeros(()))

    @torch.no_grad()
    def update(self, returns: torch.Tensor) -> torch.Tensor:
        """Fold the percentiles of ``returns`` into the EMAs (which start at 0, as the official code's) and
        return the scale."""
        q = torch.quantile(
            returns.detach().float().flatten(), torch.tensor([self.low, self.high], device=returns.device)
        )
        self.low_ema.mul_(self.decay).add_((1 - self.decay) * q[0])
        self.high_ema.mul_(self.decay).add_((1 - self.decay) * q[1])
        return self.scale()

    def scale(self) -> torch.Tensor:
        """The current ``S``."""
        return torch.clamp(self.high_ema - self.low_ema, min=self.limit)
