"""Measuring leaves the model as it was: modes, parameters and buffers."""

import pytest
import torch
import torch.nn as nn

from efflib import data, models
from efflib.latency import measure_latency, measure_throughput
from efflib.measuring import measuring
from efflib.profiler import profile
from efflib.train import evaluate


def state(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def mixed_modes() -> nn.Module:
    """A digit CNN in train mode, but for one BN a user froze in eval mode."""
    torch.manual_seed(0)
    model = models.digit_cnn(width=4).train()
    next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d)).eval()
    return model


MEASURES = {
    "profile": lambda m, x: profile(m, x),
    "profile train": lambda m, x: profile(m, x, mode="train"),
    "latency": lambda m, x: measure_latency(m, x, warmup=1, repeats=3),
    "latency train": lambda m, x: measure_latency(m, x, warmup=1, repeats=3, mode="train"),
    "throughput": lambda m, x: measure_throughput(m, x, [1, 4], warmup=1, repeats=3,
                                                  progress=False),
    "evaluate": lambda m, x: evaluate(m, data.digits(seed=0).test),
}


@pytest.mark.filterwarnings("ignore::efflib.latency.NoisyMeasurement")
@pytest.mark.parametrize("name", MEASURES)
def test_measuring_changes_nothing(name):
    model = mixed_modes()
    before, modes = state(model), [m.training for m in model.modules()]
    MEASURES[name](model, torch.randn(8, 1, 8, 8))
    assert same(state(model), before), "a parameter or buffer changed"
    assert [m.training for m in model.modules()] == modes, "a module's mode changed"


def test_train_mode_is_measured_in_train_mode():
    """In train mode BN uses the batch's statistics: the pass sees them, the model keeps its."""
    model = mixed_modes()
    seen = []
    model.register_forward_hook(lambda m, a, out: seen.append(m.training))
    profile(model, torch.randn(8, 1, 8, 8), mode="train")
    profile(model, torch.randn(8, 1, 8, 8))
    assert seen == [True, False]
    with pytest.raises(ValueError, match="mode must be one of"):
        profile(model, torch.randn(1, 1, 8, 8), mode="inference")


def test_dropout_and_bn_statistics_are_not_activations_in_eval():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten())
    x = torch.randn(2, 1, 6, 6)
    feature_maps = x.numel() + 3 * (2 * 4 * 4 * 4)  # input, conv, BN, dropout (eval: a copy)
    eval_acts = profile(net, x).activations
    assert eval_acts <= feature_maps
    assert profile(net, x, mode="train").activations >= eval_acts


def test_measuring_restores_after_an_error():
    model = mixed_modes()
    modes, before = [m.training for m in model.modules()], state(model)
    with pytest.raises(RuntimeError), measuring(model, "train"):
        model(torch.randn(4, 1, 8, 8))
        raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == modes
    assert same(state(model), before)


ZOO = {
    "encoder, batch first": (lambda: nn.TransformerEncoderLayer(16, 2, 32, batch_first=True),
                             lambda: (torch.randn(2, 5, 16),)),
    "encoder": (lambda: nn.TransformerEncoderLayer(16, 2, 32), lambda: (torch.randn(5, 2, 16),)),
    "lstm": (lambda: nn.LSTM(10, 16, num_layers=2), lambda: (torch.randn(7, 3, 10),)),
    "gru": (lambda: nn.GRU(10, 16), lambda: (torch.randn(7, 3, 10),)),
    "bilinear": (lambda: nn.Bilinear(4, 5, 6), lambda: (torch.randn(3, 4), torch.randn(3, 5))),
    "bn in train mode": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4),
                                               nn.Dropout(0.3)),
                         lambda: (torch.randn(2, 3, 6, 6),)),
}


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_the_zoo_is_left_as_it_was(name, mode):
    torch.manual_seed(0)
    make, inputs = ZOO[name]
    model = make().train()
    before = state(model)
    p = profile(model, *inputs(), mode=mode)
    assert p.macs > 0
    assert same(state(model), before) and all(m.training for m in model.modules())
