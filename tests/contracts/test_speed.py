"""Speed contracts of every registered algorithm: ``amp=True`` (bfloat16 autocast; one update agrees with
float32 from the same state; a short run learns without non-finite values; refused where bfloat16 is emulated, and a
model saved with it loads there in float32), and at most one device→host transfer per ``train`` call."""

from __future__ import annotations

import collections
import traceback
from typing import Any

import numpy as np
import pytest
import torch
from cases import our_cases
from torch.overrides import TorchFunctionMode

from sb3_latent.common.amp import bf16_supported

CASES = our_cases()
NATIVE_BF16 = bf16_supported("cpu")
needs_bf16 = pytest.mark.skipif(not NATIVE_BF16, reason="this CPU has no native bfloat16 (amp=True is refused)")

#: calls that read a tensor back to the host (a device→host transfer and a sync on a GPU)
SYNCS = {
    torch.Tensor.item,
    torch.Tensor.cpu,
    torch.Tensor.numpy,
    torch.Tensor.tolist,
    torch.Tensor.__bool__,
    torch.Tensor.__float__,
    torch.Tensor.__int__,
    torch.Tensor.__index__,
    torch.equal,
    torch.Tensor.equal,
}


class CountSyncs(TorchFunctionMode):
    """Counts :data:`SYNCS` calls, except the optimizers' reads of their step counters (host tensors by design)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter[str] = collections.Counter()

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func in SYNCS:
            caller = traceback.extract_stack()[-2]
            if "/torch/optim/" not in caller.filename:
                self.calls[f"{func.__name__} at {caller.filename.split('/')[-1]}:{caller.lineno}"] += 1
        return func(*args, **(kwargs or {}))


def batch_of(model: Any) -> Any:
    return model.sample_batch() if hasattr(model, "sample_batch") else model.replay_buffer.sample(model.batch_size)


def trained(name: str, **kw: Any) -> Any:
    case = CASES[name]
    model = case.make(**kw)
    model.learn(case.steps)
    return model


@pytest.mark.parametrize("name", CASES)
def test_one_host_transfer_per_train_call(name: str) -> None:
    model = trained(name)
    if hasattr(model, "train_ratio"):  # Dreamer: updates owed by train_ratio; owe 8
        model._credit = 8.0
    before = model._n_updates
    with CountSyncs() as counter:
        model.train(gradient_steps=8, batch_size=model.batch_size)
    assert model._n_updates - before == 8
    assert sum(counter.calls.values()) <= 1, dict(counter.calls)


#: one update in bfloat16 and in float32 from the same state: the logged losses agree within this relative
#: tolerance (plus ABS_TOL), and the gradients left by the update point the same way (cosine similarity above
#: MIN_COSINE; bfloat16 keeps 8 bits of mantissa, so about 2-3 significant digits per operation)
REL_TOL, ABS_TOL, MIN_COSINE = 0.05, 0.05, 0.98


@needs_bf16
@pytest.mark.parametrize("name", CASES)
def test_an_amp_update_agrees_with_float32(name: str, tmp_path) -> None:
    model = trained(name)
    model.save(tmp_path / "m.zip")
    twin = type(model).load(tmp_path / "m.zip", env=CASES[name].env(), amp=True)
    twin.replay_buffer = model.replay_buffer
    for m in (model, twin):
        m.policy.set_training_mode(True)
    np.random.seed(1)
    batch = batch_of(model)
    results = []
    for m in (model, twin):
        torch.manual_seed(1)
        with m._autocast():
            logs = m.update(batch)
        grads = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel()) for p in m.policy.parameters()]
        results.append(({k: float(v) for k, v in logs.items()}, torch.cat(grads)))
    (f32, g32), (b16, g16) = results
    assert set(f32) == set(b16)
    for k in f32:
        assert abs(f32[k] - b16[k]) <= ABS_TOL + REL_TOL * abs(f32[k]), (k, f32[k], b16[k])
    assert all(p.dtype == torch.float32 for p in twin.policy.parameters())
    cos = float(torch.nn.functional.cosine_similarity(g32, g16, dim=0))
    assert cos > MIN_COSINE, cos


@needs_bf16
@pytest.mark.parametrize("name", CASES)
def test_amp_runs_save_and_load(name: str, tmp_path) -> None:
    model = trained(name, amp=True)
    assert model.amp and model._n_updates > 0
    for p in model.policy.parameters():  # parameters stay float32 and finite
        assert p.dtype == torch.float32 and bool(torch.isfinite(p).all())
    model.save(tmp_path / "m.zip")
    loaded = type(model).load(tmp_path / "m.zip", env=CASES[name].env())
    assert loaded.amp is True


@pytest.mark.parametrize("name", CASES)
def test_amp_is_refused_where_bfloat16_is_emulated(name: str, monkeypatch, tmp_path) -> None:
    case = CASES[name]
    saved = case.make()
    saved.amp = True  # as if trained with amp on a machine that has bfloat16
    saved.save(tmp_path / "amp.zip")
    monkeypatch.setattr("sb3_latent.common.amp.bf16_supported", lambda device: False)
    with pytest.raises(ValueError, match="amp=True needs native bfloat16"):
        case.make(amp=True)
    with pytest.warns(UserWarning, match="trains in float32 here"):
        loaded = type(saved).load(tmp_path / "amp.zip", env=case.env())
    assert loaded.amp is False
    loaded.learn(case.steps)
    assert loaded._n_updates > 0
