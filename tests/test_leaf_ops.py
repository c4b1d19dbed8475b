"""efflib.leaf_ops: a leaf module booked from its rule counts exactly what watching its ops
counts, and every case a rule is unsure of is watched."""

import dataclasses
from unittest import mock

import pytest
import torch
import torch.nn as nn
import torch.nn.utils.parametrize
import torch.nn.utils.prune

from efflib import leaf_ops, models, profiler
from efflib.profiler import profile


def counts(p: profiler.Profile) -> dict:
    """Everything a Profile reports (its parameters compare by identity, so left out)."""
    d = dataclasses.asdict(p)
    d.pop("named_parameters")
    return d


def both_ways(model: nn.Module, *inputs, **kw) -> tuple[dict, dict, int, int]:
    """Counts with the rules and with every op watched, and how many ops each watched."""
    watched = []
    record = profiler._Counter.record

    def spy(self, *args):
        watched[-1] += 1
        return record(self, *args)

    with mock.patch.object(profiler._Counter, "record", spy):
        watched.append(0)
        fast = counts(profile(model, *inputs, **kw))
        watched.append(0)
        with mock.patch.dict(leaf_ops.RULES, clear=True):
            slow = counts(profile(model, *inputs, **kw))
    return fast, slow, watched[0], watched[1]


def assert_same(fast: dict, slow: dict) -> None:
    for key in slow:
        if key != "rows":
            assert fast[key] == slow[key], key
    for a, b in zip(fast["rows"], slow["rows"], strict=True):
        assert a == b, a["name"]


BOOKED = {  # (module, input): every op of these is booked from a rule
    "conv2d": (lambda: nn.Conv2d(3, 8, 3, padding=1), lambda: torch.randn(2, 3, 9, 9)),
    "conv2d depthwise, stride 2": (lambda: nn.Conv2d(8, 8, 3, 2, 1, groups=8),
                                   lambda: torch.randn(1, 8, 9, 9)),
    "conv2d dilated, no bias": (lambda: nn.Conv2d(4, 6, 3, dilation=2, bias=False),
                                lambda: torch.randn(1, 4, 11, 11)),
    "conv2d channels_last": (lambda: nn.Conv2d(4, 6, 3).to(memory_format=torch.channels_last),
                             lambda: torch.randn(2, 4, 8, 8).to(memory_format=torch.channels_last)),
    "conv2d float64": (lambda: nn.Conv2d(3, 4, 3).double(),
                       lambda: torch.randn(1, 3, 6, 6).double()),
    "conv2d bfloat16": (lambda: nn.Conv2d(3, 4, 3).bfloat16(),
                        lambda: torch.randn(1, 3, 6, 6).bfloat16()),
    "conv1d": (lambda: nn.Conv1d(3, 5, 3, stride=2), lambda: torch.randn(2, 3, 15)),
    "conv3d": (lambda: nn.Conv3d(2, 3, 3, padding=1), lambda: torch.randn(1, 2, 4, 5, 6)),
    "batchnorm2d": (lambda: nn.BatchNorm2d(5), lambda: torch.randn(2, 5, 4, 4)),
    "batchnorm2d, not affine": (lambda: nn.BatchNorm2d(5, affine=False),
                                lambda: torch.randn(2, 5, 4, 4)),
    "batchnorm1d on (N, C)": (lambda: nn.BatchNorm1d(5), lambda: torch.randn(3, 5)),
    "batchnorm1d on (N, C, L)": (lambda: nn.BatchNorm1d(5), lambda: torch.randn(3, 5, 7)),
    "batchnorm3d": (lambda: nn.BatchNorm3d(2), lambda: torch.randn(1, 2, 3, 4, 5)),
    "linear": (lambda: nn.Linear(6, 4), lambda: torch.randn(3, 6)),
    "linear, no bias": (lambda: nn.Linear(6, 4, bias=False), lambda: torch.randn(3, 6)),
    "relu": (lambda: nn.ReLU(), lambda: torch.randn(2, 7)),
    "relu in place": (lambda: nn.ReLU(inplace=True), lambda: torch.randn(2, 7)),
    "relu6": (lambda: nn.ReLU6(), lambda: torch.randn(2, 7)),
    "relu6 in place": (lambda: nn.ReLU6(inplace=True), lambda: torch.randn(2, 7)),
    "hardtanh": (lambda: nn.Hardtanh(-2.0, 3.0), lambda: torch.randn(2, 7)),
    "global average pool": (lambda: nn.AdaptiveAvgPool2d(1), lambda: torch.randn(2, 3, 5, 5)),
    "global average pool (1, 1)": (lambda: nn.AdaptiveAvgPool2d((1, 1)),
                                   lambda: torch.randn(2, 3, 5, 5)),
    "dropout in eval mode": (lambda: nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)),
                             lambda: torch.randn(2, 4)),
    "a block": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4),
                                      nn.ReLU6(inplace=True), nn.AdaptiveAvgPool2d(1)),
                lambda: torch.randn(2, 3, 8, 8)),
}


@pytest.mark.parametrize("name", BOOKED)
def test_a_booked_module_counts_what_watching_counts(name):
    torch.manual_seed(0)
    make, x = BOOKED[name]
    fast, slow, watched_fast, watched_slow = both_ways(make(), x())
    assert_same(fast, slow)
    assert watched_fast == 0 and watched_slow > 0, "the rule was not used"


def test_meta_tensors_are_booked_the_same():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                          nn.Conv2d(8, 8, 3, groups=8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 5)).to("meta")
    fast, slow, watched_fast, _ = both_ways(model, torch.empty(2, 3, 16, 16, device="meta"))
    assert_same(fast, slow)
    assert watched_fast == 1  # Flatten's view only


def test_a_function_mode_is_watched():
    """torch.device("meta") as a context is a TorchFunctionMode: it could change any call."""
    with torch.device("meta"):
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        fast, slow, watched_fast, _ = both_ways(model, torch.empty(1, 3, 6, 6))
    assert_same(fast, slow)
    assert watched_fast == 2


WATCHED = {  # a rule is unsure of these: they are watched op by op
    "reflect padding": (lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
                        lambda: torch.randn(1, 3, 6, 6), {}),
    "'same' padding": (lambda: nn.Conv2d(3, 4, 4, padding="same"),
                       lambda: torch.randn(1, 3, 6, 6), {}),
    "unbatched conv input": (lambda: nn.Conv2d(3, 4, 3), lambda: torch.randn(3, 6, 6), {}),
    "batchnorm in train mode": (lambda: nn.BatchNorm2d(3), lambda: torch.randn(2, 3, 4, 4),
                                {"mode": "train"}),
    "batchnorm without running statistics": (
        lambda: nn.BatchNorm2d(3, track_running_stats=False), lambda: torch.randn(2, 3, 4, 4), {}),
    "linear on (N, L, C)": (lambda: nn.Linear(6, 4), lambda: torch.randn(2, 3, 6), {}),
    "dropout in train mode": (lambda: nn.Dropout(0.5), lambda: torch.randn(4, 4),
                              {"mode": "train"}),
    "pool to 2x2": (lambda: nn.AdaptiveAvgPool2d(2), lambda: torch.randn(1, 3, 6, 6), {}),
    "global pool, channels_last": (
        lambda: nn.AdaptiveAvgPool2d(1),
        lambda: torch.randn(2, 3, 5, 5).to(memory_format=torch.channels_last), {}),
    "global pool, channels_last 1x1 map (contiguous, yet restrided)": (
        lambda: nn.AdaptiveAvgPool2d(1),
        lambda: torch.randn(2, 3, 1, 1).to(memory_format=torch.channels_last), {}),
    "integer input": (lambda: nn.ReLU(), lambda: torch.arange(-3, 3), {}),
    "a subclass with its own forward": (lambda: _Doubling(3, 4, 3),
                                        lambda: torch.randn(1, 3, 6, 6), {}),
}


class _Doubling(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("name", WATCHED)
def test_what_a_rule_is_unsure_of_is_watched(name):
    torch.manual_seed(0)
    make, x, kw = WATCHED[name]
    fast, slow, watched_fast, watched_slow = both_ways(make(), x(), **kw)
    assert_same(fast, slow)
    assert watched_fast == watched_slow > 0


@pytest.mark.parametrize("shape", [(2, 3, 5, 5), (1, 3, 5, 5), (2, 3, 1, 1), (2, 1, 5, 5),
                                   (1, 1, 1, 1), (2, 3, 1, 5)])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_a_global_pool_counts_the_same_in_either_memory_format(shape, fmt):
    """On channels_last, torch follows the mean with an in-place as_strided_ (issue 28)."""
    x = torch.randn(shape).to(memory_format=fmt)
    fast, slow, _, _ = both_ways(nn.AdaptiveAvgPool2d(1), x)
    assert_same(fast, slow)


def test_resnet_in_channels_last_counts_the_same_both_ways():
    model = models.resnet50(num_classes=10).to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 64, 64).to(memory_format=torch.channels_last)
    fast, slow, watched_fast, watched_slow = both_ways(model, x)
    assert_same(fast, slow)
    pool = next(r for r in fast["rows"] if r["type"] == "AdaptiveAvgPool2d")
    assert pool["ops"] == ["mean", "as_strided_"] and watched_fast < watched_slow / 3


def test_a_modules_own_hook_is_watched_and_counted():
    conv = nn.Conv2d(3, 4, 3)
    conv.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    fast, slow, watched_fast, _ = both_ways(nn.Sequential(conv), torch.randn(1, 3, 6, 6))
    assert_same(fast, slow)
    assert watched_fast == 2
    assert fast["rows"][1]["ops"] == ["mul", "convolution"]


class _Scaled(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return 0.5 * w


def _hooked(kind: str) -> nn.Module:
    conv = nn.Conv2d(3, 4, 3)
    if kind == "backward hook":
        conv.register_full_backward_hook(lambda *args: None)
    elif kind == "pruned with torch.nn.utils.prune":  # a pre-hook multiplies by the mask
        torch.nn.utils.prune.l1_unstructured(conv, "weight", amount=0.5)
    elif kind == "parametrized":  # a subclass whose weight is computed on access
        torch.nn.utils.parametrize.register_parametrization(conv, "weight", _Scaled())
    return nn.Sequential(conv)


@pytest.mark.parametrize("kind", ["backward hook", "pruned with torch.nn.utils.prune",
                                  "parametrized"])
def test_hooks_and_parametrizations_are_watched(kind):
    fast, slow, watched_fast, watched_slow = both_ways(_hooked(kind), torch.randn(1, 3, 6, 6))
    assert_same(fast, slow)
    assert watched_fast == watched_slow > 0


def test_a_patched_instance_is_watched():
    """Libraries patch `forward` on an instance (adapters, fake quantizers): not the rule's."""
    conv = nn.Conv2d(3, 4, 3)
    conv.forward = lambda x: conv._conv_forward(x * 2, conv.weight, conv.bias)
    fast, slow, watched_fast, _ = both_ways(nn.Sequential(conv), torch.randn(1, 3, 6, 6))
    assert_same(fast, slow)
    assert watched_fast == 2 and fast["rows"][1]["ops"] == ["mul", "convolution"]


class _InferenceInside(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

    def forward(self, x):
        with torch.inference_mode():
            return self.bn(self.conv(x))


def test_inference_mode_inside_the_model_is_watched():
    """There composite ops reach the counter whole, and it decomposes them itself."""
    fast, slow, watched_fast, _ = both_ways(_InferenceInside(), torch.randn(1, 3, 6, 6))
    assert_same(fast, slow)
    assert watched_fast > 0 and fast["macs"] == 4 * 4 * 4 * 27


def test_autocast_is_watched():
    model, x = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), torch.randn(1, 3, 6, 6)
    runs = []
    for rules in (leaf_ops.RULES, {}):  # each in its own region: autocast caches cast weights
        with mock.patch.dict(leaf_ops.RULES, rules, clear=True), \
                torch.autocast("cpu", dtype=torch.bfloat16):
            runs.append(counts(profile(model, x)))
    assert_same(*runs)
    assert runs[0]["rows"][1]["ops"] == ["_to_copy"] * 3 + ["convolution"]


def test_a_module_called_twice_is_booked_each_time():
    shared = nn.Conv2d(4, 4, 3, padding=1)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    fast, slow, watched_fast, _ = both_ways(model, torch.randn(1, 4, 6, 6))
    assert_same(fast, slow)
    assert watched_fast == 0 and fast["rows"][1]["ops"] == ["convolution", "convolution"]


def test_an_error_inside_a_booked_module_leaves_no_mode_behind():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match="expected 4D input"):
        profile(model[1], torch.randn(4, 5))
    with pytest.raises(RuntimeError, match="channels"):
        profile(model, torch.randn(1, 5, 6, 6))
    assert torch._C._len_torch_dispatch_stack() == 0
    assert profile(model, torch.randn(1, 3, 6, 6)).macs == 4 * 4 * 4 * 27  # (4 x 4 outputs, 4 maps)


MODELS = {
    "mobilenet_v2": (lambda: models.mobilenet_v2(width_mult=0.35), (1, 3, 64, 64)),
    "resnet50": (lambda: models.resnet50(num_classes=10), (1, 3, 64, 64)),
    "shufflenet_v2": (lambda: models.shufflenet_v2(width=0.5), (1, 3, 64, 64)),
    "vgg16 with BN": (lambda: models.vgg16(batch_norm=True, num_classes=10), (1, 3, 32, 32)),
    "alexnet": (lambda: models.alexnet(), (1, 3, 224, 224)),
    "inception block": (lambda: models.inception_block(in_channels=32, mid_channels=8),
                        (1, 32, 9, 9)),
    "lenet5": (lambda: models.lenet5(), (2, 1, 32, 32)),
    "digit_cnn": (lambda: models.digit_cnn(), (2, 1, 8, 8)),
    "early_exit_cnn": (lambda: models.early_exit_cnn(), (2, 1, 8, 8)),
    "transformer encoder layer": (lambda: nn.TransformerEncoderLayer(16, 2, 32), (5, 2, 16)),
    "lstm": (lambda: nn.LSTM(10, 16, num_layers=2), (7, 3, 10)),
}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_whole_models_count_the_same_both_ways(name, mode):
    torch.manual_seed(0)
    make, shape = MODELS[name]
    fast, slow, watched_fast, watched_slow = both_ways(make(), torch.randn(shape), mode=mode)
    assert_same(fast, slow)
    assert watched_fast <= watched_slow


def test_mobilenet_v2_is_booked_almost_whole():
    """The point of the rules: MobileNetV2's 205 ops, 11 watched (its adds and reshapes)."""
    fast, slow, watched_fast, watched_slow = both_ways(models.mobilenet_v2(),
                                                       torch.randn(1, 3, 224, 224))
    assert_same(fast, slow)
    assert (watched_fast, watched_slow) == (11, 205)


def test_resnet50_on_the_meta_device_the_same():
    with torch.device("meta"):
        model = models.resnet50()
    fast, slow, watched_fast, _ = both_ways(model, torch.empty(1, 3, 224, 224, device="meta"))
    assert_same(fast, slow)
    assert fast["peak_activations"] == 2_408_448 and watched_fast < 30
