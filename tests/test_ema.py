"""EMA: the average it keeps, its warm-up, state round trip and the swap-in context."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from difflab.ema import EMA


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(3, 2)


def test_update_is_the_exponential_average():
    model = _model()
    ema = EMA(model, decay=0.9, warmup=False)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    # shadow = 0.9 * start + 0.1 * (start + 1) = start + 0.1 (exact up to float32 rounding)
    torch.testing.assert_close(ema.shadow["weight"], start + 0.1)


def test_warmup_decay():
    ema = EMA(_model(), decay=0.999)
    assert ema.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    ema.num_updates = 10_000
    assert ema.current_decay() == pytest.approx(0.999)


def test_swapped_in_restores_live_weights():
    model = _model()
    ema = EMA(model, decay=0.5, warmup=False)
    with torch.no_grad():
        model.weight.mul_(3.0)
    live = model.weight.detach().clone()
    ema.update(model)
    with ema.swapped_in(model):
        torch.testing.assert_close(model.weight, ema.shadow["weight"])
    torch.testing.assert_close(model.weight, live)


def test_state_dict_round_trip_and_averaged_state():
    model = _model()
    ema = EMA(model, decay=0.7)
    for _ in range(3):
        with torch.no_grad():
            model.weight.add_(0.5)
        ema.update(model)
    other = EMA(_model(), decay=0.1)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 3 and other.decay == 0.7
    torch.testing.assert_close(other.shadow["weight"], ema.shadow["weight"])
    fresh = _model()
    fresh.load_state_dict(ema.averaged_state_dict(model))
    torch.testing.assert_close(fresh.weight, ema.shadow["weight"])


def test_mismatched_state_is_an_error():
    ema = EMA(_model())
    with pytest.raises(ValueError, match="does not match"):
        ema.load_state_dict({"decay": 0.9, "num_updates": 0, "shadow": {"other": torch.zeros(1)}})
    with pytest.raises(ValueError, match="decay"):
        EMA(_model(), decay=1.0)
