"""efflib.nas: the layer list matches the network it builds, the table covers the space,
and the predictor is the sum of the table."""

import random

import pytest
import torch

from efflib import nas, profiler


@pytest.mark.parametrize("config", nas.all_configs()[::7] + [nas.all_configs()[-1]])
def test_each_layer_gets_the_input_its_key_names(config):
    net = nas.tiny_net(config).eval()
    x = torch.randn(1, 1, 8, 8)
    for key, layer in zip(nas.layer_keys(config), net, strict=True):
        assert tuple(x.shape) == nas.input_shape(key), key
        x = layer(x)
    assert tuple(x.shape) == (1, 10)


def test_the_space_and_its_keys():
    configs = nas.all_configs()
    assert len(configs) == 54 and len({tuple(c.values()) for c in configs}) == 54
    assert nas.layer_keys({"width": 8, "depth": 1, "kernel": 3, "expand": 1}) == [
        ("stem", 8), ("block", 8, 16, 3, 1, 2, 8), ("head", 16, 4)]
    assert nas.layer_keys({"width": 16, "depth": 3, "kernel": 5, "expand": 4})[1:] == [
        ("block", 16, 32, 5, 4, 2, 8), ("block", 32, 64, 5, 4, 2, 4),
        ("block", 64, 64, 5, 4, 1, 2), ("head", 64, 2)]
    assert nas.sample(random.Random(0)) in configs


def test_expansion_one_has_no_expanding_conv():
    plain = nas.layer(("block", 8, 16, 3, 1, 2, 8))
    wide = nas.layer(("block", 8, 16, 3, 4, 2, 8))
    assert len(plain) == 5 and len(wide) == 8
    assert wide[3].groups == 32 and wide[3].stride == (2, 2)
    assert isinstance(wide[-1], torch.nn.BatchNorm2d)  # a linear bottleneck: no ReLU after
    macs = profiler.profile(wide, torch.randn(1, 8, 8, 8)).macs
    # expand 8 -> 32 at 8x8, depthwise 3x3 on 32 at 4x4, project 32 -> 16 at 4x4
    assert macs == 8 * 32 * 64 + 32 * 9 * 16 + 32 * 16 * 16


@pytest.mark.parametrize("bad, match", [
    ({"width": 8, "depth": 1, "kernel": 3}, "exactly the keys"),
    ({"width": 10, "depth": 1, "kernel": 3, "expand": 1}, "width must be one of"),
    ("w8", "exactly the keys"),
])
def test_bad_configurations_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        nas.layer_keys(bad)


def test_the_table_times_every_layer_once_and_predicts_by_sums():
    configs = nas.all_configs()[:4]
    table = nas.measure_table(configs, repeats=3, progress=False)
    assert set(table) == {k for c in configs for k in nas.layer_keys(c)}
    assert all(0 < v < 1 for v in table.values())
    for c in configs:
        assert nas.predict_latency(c, table) == pytest.approx(
            sum(table[k] for k in nas.layer_keys(c)))
    with pytest.raises(KeyError):
        nas.predict_latency(nas.all_configs()[-1], table)  # a layer the table lacks
