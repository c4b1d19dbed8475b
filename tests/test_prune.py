"""efflib.prune against torch.nn.utils.prune and against the dense model it came from."""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.utils.prune as tprune

from efflib import data, models, profile, prune, train


@pytest.mark.parametrize("n", [1, 7, 10, 33, 100, 1001])
@pytest.mark.parametrize("s", [0.0, 0.05, 0.25, 0.5, 0.7, 0.95, 1.0])
def test_mask_keeps_exactly_round_of_the_rest(n, s):
    w = torch.randn(n)
    assert int(prune.magnitude_mask(w, s).sum()) == round((1 - s) * n)


def test_mask_keeps_the_largest_magnitudes_and_breaks_ties_by_index():
    w = torch.tensor([0.5, -3.0, 0.5, 2.0, -0.5, 0.1])
    mask = prune.magnitude_mask(w, 0.5)  # keep 3: -3, 2, and the first 0.5
    assert mask.tolist() == [True, True, False, True, False, False]
    assert prune.magnitude_mask(w.view(2, 3), 0.5).shape == (2, 3)
    with pytest.raises(ValueError, match="sparsity"):
        prune.magnitude_mask(w, 1.5)


@pytest.mark.parametrize("seed", range(5))
def test_mask_equals_torch_l1_unstructured_without_ties(seed):
    g = torch.Generator().manual_seed(seed)
    layer = nn.Conv2d(8, 16, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g))
    for s in (0.1, 0.3, 0.6, 0.9):
        n = layer.weight.numel()
        assert n - round(s * n) == round((1 - s) * n)  # both rounding conventions agree here
        ref = copy.deepcopy(layer)
        tprune.l1_unstructured(ref, "weight", amount=s)
        assert torch.equal(prune.magnitude_mask(layer.weight, s), ref.weight_mask.bool())


@pytest.fixture(scope="module")
def loaders():
    return data.digits(seed=0)


def test_masks_persist_through_fine_tuning(loaders):
    model = models.digit_cnn(width=8)
    pruner = prune.Pruner(model, {"features.3": 0.8, "fc": 0.5})
    counts = {n: int(m.sum()) for n, m in pruner.masks.items()}
    train.fit(model, loaders.train, None, epochs=1, after_step=pruner.apply, progress=False)
    layers = prune.prunable_layers(model)
    for name, mask in pruner.masks.items():
        w = layers[name].weight
        assert int((w != 0).sum()) <= counts[name]
        assert torch.all(w[~mask] == 0)
    assert pruner.sparsity()["features.3"] >= 0.8
    with pytest.raises(KeyError, match="features.1"):
        prune.Pruner(model, {"features.1": 0.5})


def test_without_reapplying_adam_revives_pruned_weights(loaders):
    """Why `after_step` exists: one step of Adam moves masked weights off zero."""
    model = models.digit_cnn(width=8)
    prune.Pruner(model, {"features.3": 0.8})
    train.fit(model, loaders.train, None, epochs=1, progress=False)
    assert float((model.features[3].weight == 0).float().mean()) < 0.8


def test_sensitivity_scan_restores_the_model(loaders):
    model = models.digit_cnn(width=8)
    train.fit(model, loaders.train, None, epochs=2, progress=False)
    before = copy.deepcopy(model.state_dict())
    base = train.evaluate(model, loaders.test)
    scan = prune.sensitivity_scan(model, lambda m: train.evaluate(m, loaders.test),
                                  [0.0, 0.5, 0.99], layers=["features.0", "fc"], progress=False)
    assert set(scan) == {"features.0", "fc"}
    assert scan["fc"][0] == base and scan["features.0"][0] == base
    assert scan["features.0"][2] < base  # 99% of the first layer gone hurts
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def _conv_bn_next(next_linear=False):
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    nxt = nn.Linear(8 * 4 * 4, 5) if next_linear else nn.Conv2d(8, 6, 3, padding=1)
    return conv.eval(), bn.eval(), nxt.eval()


@pytest.mark.parametrize("next_linear", [False, True])
def test_prune_channels_equals_dense_on_kept_channels(next_linear):
    conv, bn, nxt = _conv_bn_next(next_linear)
    x = torch.randn(2, 3, 4, 4)
    keep = 5
    idx = torch.sort(torch.topk(conv.weight.flatten(1).norm(dim=1), keep).indices).values
    c2, b2, n2 = prune.prune_channels(conv, bn, nxt, keep)
    assert (c2.out_channels, b2.num_features) == (keep, keep)
    with torch.no_grad():
        dense = torch.relu(bn(conv(x)))
        small = torch.relu(b2(c2(x)))
        assert torch.equal(small, dense[:, idx])
        dropped = dense.clone()
        dropped[:, [i for i in range(8) if i not in idx.tolist()]] = 0
        flat = (lambda t: t.flatten(1)) if next_linear else (lambda t: t)
        torch.testing.assert_close(n2(flat(small)), nxt(flat(dropped)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_prune_channels_keeps_the_dtype(dtype):
    """Issue 28: fp64 and bf16 convs became float32 while BatchNorm and the next layer kept
    their dtype, so the pruned model failed at forward."""
    conv, bn, nxt = (m.to(dtype) for m in _conv_bn_next())
    c2, b2, n2 = prune.prune_channels(conv, bn, nxt, 5)
    assert c2.weight.dtype == dtype
    with torch.no_grad():
        out = n2(torch.relu(b2(c2(torch.randn(2, 3, 4, 4, dtype=dtype)))))
    assert out.dtype == dtype and out.shape == (2, 6, 4, 4)


def test_prune_channels_rejects_what_it_cannot_do():
    conv, bn, nxt = _conv_bn_next()
    with pytest.raises(ValueError, match="keep"):
        prune.prune_channels(conv, bn, nxt, 0)
    with pytest.raises(ValueError, match="groups=1"):
        prune.prune_channels(conv, bn, nn.Conv2d(8, 8, 3, groups=8), 4)
    with pytest.raises(TypeError, match="ReLU"):
        prune.prune_channels(conv, bn, nn.ReLU(), 4)


def test_prune_channels_with_batch_norm_that_keeps_no_statistics():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8, track_running_stats=False)
    nxt = nn.Conv2d(8, 2, 1)
    new_conv, new_bn, new_next = prune.prune_channels(conv, bn, nxt, 5)
    assert new_bn.num_features == 5 and new_bn.running_mean is None
    assert new_bn.weight.shape == (5,)
    out = new_next(new_bn(new_conv(torch.randn(2, 3, 6, 6))))  # batch statistics
    assert out.shape == (2, 2, 6, 6)


def test_channel_prune_gives_a_smaller_dense_model_equal_when_dropped_inputs_are_unused():
    model = models.digit_cnn(width=8).eval()
    x = torch.randn(3, 1, 8, 8)
    # make the channels channel_prune will drop invisible to their consumers
    pairs = [(model.features[0], model.features[3]), (model.features[3], model.features[7]),
             (model.features[7], model.fc)]
    with torch.no_grad():
        for conv, consumer in pairs:
            keep = round(0.5 * conv.out_channels)
            idx = torch.topk(conv.weight.flatten(1).norm(dim=1), keep).indices
            drop = [i for i in range(conv.out_channels) if i not in idx.tolist()]
            consumer.weight[:, drop] = 0
    small = prune.channel_prune(model, 0.5).eval()
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x))
    assert profile(small, x).macs < 0.3 * profile(model, x).macs
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="ratio"):
        prune.channel_prune(model, 0.0)


def test_magnitude_mask_names_nan_weights():
    """A NaN sorts as the largest magnitude: the mask would keep it silently."""
    with pytest.raises(ValueError, match="magnitude_mask: weight has 1 NaN"):
        prune.magnitude_mask(torch.tensor([1.0, float("nan"), 0.5]), 0.5)


@pytest.mark.parametrize("n, sparsity, kept, torch_kept", [
    (1, 0.5, 0, 1), (3, 0.5, 2, 1), (5, 0.5, 2, 3), (2, 0.25, 2, 2), (10, 0.25, 8, 8)])
def test_the_kept_count_at_half_integers_is_the_courses_not_torchs(n, sparsity, kept,
                                                                   torch_kept):
    """docs/efflib-conventions.md: efflib rounds the kept count, torch the pruned count."""
    w = torch.arange(1.0, n + 1)
    assert int(prune.magnitude_mask(w, sparsity).sum()) == prune.kept_count(n, sparsity) == kept
    layer = nn.Linear(n, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(w)
    tprune.l1_unstructured(layer, "weight", amount=sparsity)
    assert int(layer.weight_mask.sum()) == torch_kept
