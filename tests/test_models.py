"""efflib.models: torchvision's published parameter counts and MACs, shapes, building blocks."""

from pathlib import Path

import pytest
import torch
import torch.nn as nn

from efflib import models
from efflib.profiler import profile

IMAGENET = (1, 3, 224, 224)

# torchvision's published num_params and "GFLOPS" (which are GMACs), to their precision
PUBLISHED = [
    ("alexnet", lambda: models.alexnet(), 61_100_840, 0.714),
    ("vgg16", lambda: models.vgg16(), 138_357_544, 15.47),
    ("resnet50", lambda: models.resnet50(), 25_557_032, 4.09),
    ("mobilenet_v2", lambda: models.mobilenet_v2(), 3_504_872, 0.30),
    ("shufflenet_v2_x0_5", lambda: models.shufflenet_v2(width=0.5), 1_366_792, 0.04),
    ("shufflenet_v2_x1_0", lambda: models.shufflenet_v2(width=1.0), 2_278_604, 0.14),
    ("shufflenet_v2_x1_5", lambda: models.shufflenet_v2(width=1.5), 3_503_624, 0.30),
    ("shufflenet_v2_x2_0", lambda: models.shufflenet_v2(width=2.0), 7_393_996, 0.58),
]


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def profiles():
    torch.manual_seed(0)
    out = {}
    for name, make, _, _ in PUBLISHED:
        model = make().eval()
        out[name] = (model, profile(model, torch.randn(IMAGENET)))
    return out


@pytest.mark.parametrize("name,params,gmacs", [(n, p, g) for n, _, p, g in PUBLISHED])
def test_published_params_and_gmacs(profiles, name, params, gmacs):
    model, prof = profiles[name]
    assert n_params(model) == params
    assert prof.params == params
    digits = len(str(gmacs).split(".")[1])
    assert round(prof.macs / 1e9, digits) == pytest.approx(gmacs)


@pytest.mark.parametrize("width,mmacs", [(0.5, 41), (1.0, 146), (1.5, 299), (2.0, 591)])
def test_shufflenet_paper_table5_macs(profiles, width, mmacs):
    """Table 5's "FLOPs" are MACs; our count is within 1.5% (the paper rounds its own way)."""
    name = {0.5: "shufflenet_v2_x0_5", 1.0: "shufflenet_v2_x1_0", 1.5: "shufflenet_v2_x1_5",
            2.0: "shufflenet_v2_x2_0"}[width]
    assert profiles[name][1].macs / 1e6 == pytest.approx(mmacs, rel=0.015)


def test_lecture_alexnet_matches_lecture_table():
    m = models.alexnet(variant="lecture").eval()
    p = profile(m, torch.randn(IMAGENET))
    assert (p.weights, p.macs, p.activations, p.peak_activations) == (
        60_954_656, 724_406_816, 932_264, 440_928)
    assert p.params == 60_954_656 + 96 + 256 + 384 + 384 + 256 + 4096 + 4096 + 1000
    assert [r.weights for r in p.rows if r.weights] == [
        34_848, 307_200, 884_736, 663_552, 442_368, 37_748_736, 16_777_216, 4_096_000]


@pytest.mark.parametrize("make,shape,out", [
    (models.lenet5, (2, 1, 32, 32), (2, 10)),
    (models.digit_cnn, (3, 1, 8, 8), (3, 10)),
    (lambda: models.alexnet(num_classes=7), (1, 3, 224, 224), (1, 7)),
    (lambda: models.mobilenet_v2(width_mult=0.5, num_classes=5), (2, 3, 96, 96), (2, 5)),
    (lambda: models.shufflenet_v2(width=0.5, num_classes=3), (2, 3, 64, 64), (2, 3)),
    (lambda: models.resnet50(num_classes=4), (1, 3, 64, 64), (1, 4)),
])
def test_forward_shapes(make, shape, out):
    with torch.no_grad():
        assert make().eval()(torch.randn(shape)).shape == out


def test_lenet5_and_digit_cnn_sizes():
    assert n_params(models.lenet5()) == 61_706
    assert n_params(models.digit_cnn()) == 24_058


def test_mobilenet_width_rounds_to_multiples_of_8():
    m = models.mobilenet_v2(width_mult=0.35)
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert all(c.out_channels % 8 == 0 for c in convs)
    assert convs[0].out_channels == 16  # 32 x 0.35 = 11.2 -> 16 (never 10% below)
    assert convs[-1].out_channels == 1280  # the last conv never shrinks


def test_mobilenet_skip_only_where_shapes_match():
    blocks = [b for b in models.mobilenet_v2().modules() if isinstance(b, models.InvertedResidual)]
    assert len(blocks) == 17
    assert sum(b.use_skip for b in blocks) == 10


def test_channel_shuffle_interleaves_against_index_formula():
    x = torch.arange(12.0).view(1, 12, 1, 1)
    y = models.channel_shuffle(x, 3).flatten().tolist()
    # output channel j comes from input group j % g, position j // g
    assert y == [(j % 3) * 4 + j // 3 for j in range(12)]
    with pytest.raises(ValueError, match="groups"):
        models.channel_shuffle(torch.zeros(1, 10, 1, 1), 3)


def test_shufflenet_stride1_unit_keeps_half_untouched():
    unit = models.ShuffleUnit(48, 48, 1).eval()
    x = torch.randn(1, 48, 8, 8)
    with torch.no_grad():
        y = unit(x)
    # after the shuffle of 2 groups, even channels are the untouched first half
    assert torch.equal(y[:, 0::2], x[:, :24])


def test_bottleneck_projection_only_when_shape_changes():
    assert isinstance(models.Bottleneck(256, 64).downsample, nn.Identity)
    assert not isinstance(models.Bottleneck(64, 64).downsample, nn.Identity)
    assert not isinstance(models.Bottleneck(256, 128, 2).downsample, nn.Identity)


def test_inception_factorised_saves_params_against_full_7x7():
    block = models.inception_block(in_channels=64, mid_channels=32, branch_channels=16)
    with torch.no_grad():
        assert block.eval()(torch.randn(1, 64, 17, 17)).shape == (1, 64, 17, 17)
    kernels = {c.kernel_size for c in block.modules() if isinstance(c, nn.Conv2d)}
    assert kernels == {(1, 1), (1, 7), (7, 1)}
    # a 1x7 + 7x1 pair holds 2 x 7 = 14 weights per channel pair instead of 49
    pair = block.branch7[1][0].weight.numel() + block.branch7[2][0].weight.numel()
    assert pair == 32 * 32 * 7 + 16 * 32 * 7


@pytest.mark.parametrize("bad", [
    lambda: models.alexnet(variant="caffe"),
    lambda: models.shufflenet_v2(width=0.75),
    lambda: models.mobilenet_v2(width_mult=0),
])
def test_bad_arguments_name_the_problem(bad):
    with pytest.raises(ValueError, match="variant|width"):
        bad()


def test_factories_are_keyword_only():
    with pytest.raises(TypeError):
        models.shufflenet_v2(1.0)


def test_early_exit_cnn_exits_and_full_path():
    model = models.early_exit_cnn(width=4).eval()
    x = torch.randn(3, 1, 8, 8)
    early, final = model.exits(x)
    assert early.shape == final.shape == (3, 10)
    assert torch.equal(final, model(x))
    assert torch.equal(early, model.exit1(model.block1(x)))


@pytest.mark.parametrize("kernel, stride, out", [(3, 1, 8), (5, 1, 8), ((1, 7), 1, 8),
                                                 ((7, 1), 1, 8), (3, 2, 4), (1, 2, 4)])
def test_conv_norm_act_keeps_the_size_at_stride_1(kernel, stride, out):
    block = nn.Sequential(*models.conv_norm_act(4, 6, kernel, stride))
    assert block(torch.randn(2, 4, 8, 8)).shape == (2, 6, out, out)


def test_conv_norm_act_has_no_conv_bias_and_the_asked_norm_and_activation():
    conv, norm, act = models.conv_norm_act(4, 8, 3, groups=4, activation=nn.ReLU6, eps=1e-3)
    assert conv.bias is None and conv.groups == 4 and norm.eps == 1e-3
    assert type(act) is nn.ReLU6 and act.inplace
    assert [type(m) for m in models.conv_norm_act(4, 8, 1, activation=None)] == \
        [nn.Conv2d, nn.BatchNorm2d]


def test_conv_norm_activation_is_written_once():
    """Six models once had a conv + norm helper each; only the block builds a norm now
    (VGG's stage is an answer key: a student writes it, conv bias and all, as VGG-BN)."""
    efflib = Path(models.__file__).parent.parent
    building = [p.relative_to(efflib).as_posix()
                for p in [*(efflib / "models").glob("*.py"), efflib / "nas.py"]
                if "BatchNorm2d(" in p.read_text()]
    assert sorted(building) == ["models/blocks.py", "models/vgg.py"]
    for make in (models.digit_cnn, models.early_exit_cnn, models.mobilenet_v2,
                 models.shufflenet_v2, models.resnet50, models.inception_block):
        leaves = [m for m in make().modules() if not list(m.children())]
        pairs = [(a, b) for a, b in zip(leaves[:-1], leaves[1:], strict=True)
                 if isinstance(b, nn.BatchNorm2d)]
        assert pairs and all(isinstance(a, nn.Conv2d) and a.bias is None for a, _ in pairs)
