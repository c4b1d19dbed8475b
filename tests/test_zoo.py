"""A zoo of architectural patterns, written here (torchvision's wheel does not load beside
this torch): each profiled model is compared with torch's FlopCounterMode, with every op
watched (no leaf rules), with itself on the meta device, and with a second identical call.
Issue 28 found efflib wrong on these patterns in a held-out zoo of 110 models."""

import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.utils.prune
from test_leaf_ops import assert_same, both_ways, counts
from torch.utils.flop_counter import FlopCounterMode

from efflib.profiler import profile


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7, LayerNorm over channels, an inverted MLP, layer scale (Liu et al.,
    https://arxiv.org/abs/2201.03545); run in channels_last."""

    def __init__(self, c: int):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm, self.up, self.down = nn.LayerNorm(c), nn.Linear(c, 4 * c), nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.full((c,), 1e-2))

    def forward(self, x):                                      # (N, C, H, W)
        y = self.dw(x).permute(0, 2, 3, 1)                     # (N, H, W, C)
        y = self.down(F.gelu(self.up(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtTiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 4, stride=4)
        self.blocks = nn.Sequential(ConvNeXtBlock(16), ConvNeXtBlock(16))
        self.pool, self.head = nn.AdaptiveAvgPool2d(1), nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.pool(self.blocks(self.stem(x))).flatten(1))


class WindowAttention(nn.Module):
    """Swin's shifted-window attention written out, with a relative position bias table
    indexed by a buffer (Liu et al., https://arxiv.org/abs/2103.14030)."""

    def __init__(self, c: int, window: int = 4, heads: int = 2):
        super().__init__()
        self.c, self.w, self.h = c, window, heads
        self.qkv, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.table = nn.Parameter(torch.randn((2 * window - 1) ** 2, heads) * 0.02)
        ij = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window),
                                        indexing="ij")).flatten(1)           # (2, w*w)
        rel = (ij[:, :, None] - ij[:, None, :]).permute(1, 2, 0) + window - 1
        self.register_buffer("index", rel[..., 0] * (2 * window - 1) + rel[..., 1])

    def forward(self, x):                                      # (N, H, W, C)
        n, hh, ww, c = x.shape
        x = torch.roll(x, shifts=(-self.w // 2, -self.w // 2), dims=(1, 2))
        win = x.view(n, hh // self.w, self.w, ww // self.w, self.w, c)
        win = win.permute(0, 1, 3, 2, 4, 5).reshape(-1, self.w * self.w, c)  # (B, T, C)
        q, k, v = self.qkv(win).view(win.shape[0], -1, 3, self.h, c // self.h) \
            .permute(2, 0, 3, 1, 4)                            # (B, heads, T, c/heads)
        scale = torch.tensor(1.0 / math.sqrt(c // self.h))   # a constant made mid-forward
        bias = self.table[self.index.view(-1)].view(self.w ** 2, self.w ** 2, -1)
        bias.unsqueeze_(0).transpose_(1, 3)                    # (1, heads, T, T) in place
        att = (q @ k.transpose(-2, -1)) * scale + bias         # (B, heads, T, T)
        out = (att.softmax(-1) @ v).transpose(1, 2).reshape(win.shape)
        out = self.proj(out).view(n, hh // self.w, ww // self.w, self.w, self.w, c)
        return out.permute(0, 1, 3, 2, 4, 5).reshape(n, hh, ww, c)


class SqueezeExcite(nn.Module):
    """MobileNetV3's inverted residual with squeeze-and-excitation (Howard et al.,
    https://arxiv.org/abs/1905.02244)."""

    def __init__(self, c: int = 8, e: int = 24):
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(c, e, 1, bias=False), nn.BatchNorm2d(e),
                                    nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(e, e, 3, padding=1, groups=e, bias=False),
                                nn.BatchNorm2d(e), nn.Hardswish())
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(e, 6, 1), nn.ReLU(),
                                nn.Conv2d(6, e, 1), nn.Hardsigmoid())
        self.project = nn.Sequential(nn.Conv2d(e, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        y = self.dw(self.expand(x))
        return x + self.project(y * self.se(y))


class ViTTiny(nn.Module):
    """Patches, a class token, position embeddings and encoder layers (Dosovitskiy et al.,
    https://arxiv.org/abs/2010.11929): in eval, each layer runs torch's fused fast path."""

    def __init__(self, d: int = 32):
        super().__init__()
        self.patch = nn.Conv2d(3, d, 4, stride=4)
        self.cls, self.pos = nn.Parameter(torch.zeros(1, 1, d)), nn.Parameter(torch.zeros(1, 17, d))
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)           # (N, 16, d)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1) + self.pos
        return self.head(self.encoder(t)[:, 0])


class CausalSelfAttention(nn.Module):
    """GPT's attention through F.scaled_dot_product_attention (the CPU's flash kernel)."""

    def __init__(self, d: int = 32, heads: int = 4):
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):                                      # (N, T, d)
        n, t, d = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(n, t, d))


class TiedLanguageModel(nn.Module):
    """An LSTM language model whose output layer shares the embedding (Press & Wolf,
    https://arxiv.org/abs/1608.05859)."""

    def __init__(self, vocab: int = 50, d: int = 16, cell=nn.LSTM):
        super().__init__()
        self.embed, self.rnn = nn.Embedding(vocab, d), cell(d, d, num_layers=2, batch_first=True)
        self.out = nn.Linear(d, vocab, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, ids):
        return self.out(self.rnn(self.embed(ids))[0])


class Shared(nn.Module):
    """One conv applied three times (weight sharing across depth)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        for _ in range(3):
            x = F.relu(self.conv(x)) + x
        return x


def pruned() -> nn.Module:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Flatten(),
                          nn.Linear(8 * 4 * 4, 4))
    for m in (model[0], model[2], model[4]):
        torch.nn.utils.prune.l1_unstructured(m, "weight", amount=0.6)
    return model


def segmentation_head() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                         nn.ConvTranspose2d(8, 4, 2, stride=2), nn.Upsample(scale_factor=2,
                                                                            mode="bilinear"))


CASES = {  # name: (model, example input, whether the CPU runs kernels meta has not: fused
    # attention, mkldnn's LSTM, a recurrent layer's input projected for all steps at once)
    "convnext, channels_last": (
        lambda: ConvNeXtTiny().to(memory_format=torch.channels_last),
        lambda: torch.randn(2, 3, 32, 32).to(memory_format=torch.channels_last), False),
    "swin window attention": (lambda: WindowAttention(16), lambda: torch.randn(1, 8, 8, 16),
                              False),
    "squeeze-and-excite": (SqueezeExcite, lambda: torch.randn(2, 8, 12, 12), False),
    "vit, fused encoder": (ViTTiny, lambda: torch.randn(2, 3, 16, 16), True),
    "causal sdpa": (CausalSelfAttention, lambda: torch.randn(2, 10, 32), True),
    "lstm, tied embedding": (TiedLanguageModel, lambda: torch.randint(0, 50, (2, 7)), True),
    "gru stack": (lambda: TiedLanguageModel(cell=nn.GRU), lambda: torch.randint(0, 50, (2, 7)),
                  True),
    "plain rnn": (lambda: nn.RNN(10, 16, num_layers=2), lambda: torch.randn(7, 3, 10), True),
    "weight sharing": (Shared, lambda: torch.randn(1, 8, 6, 6), False),
    "prune masks": (pruned, lambda: torch.randn(2, 3, 8, 8), False),
    "bfloat16": (lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                       nn.Linear(8, 4)).bfloat16(),
                 lambda: torch.randn(2, 3, 10, 10).bfloat16(), False),
    "segmentation head": (segmentation_head, lambda: torch.randn(1, 3, 8, 8), False),
}


def made(name: str, device: str = "cpu") -> tuple[nn.Module, torch.Tensor]:
    """The case's model and input, made on `device` (on meta, made there: moving a model
    with tied weights to meta unties them)."""
    torch.manual_seed(0)
    make, x, _ = CASES[name]
    with torch.device(device):
        model = make().eval()
    x = x()
    return model, (x if device == "cpu" else torch.empty_like(x, device=device))


def on_meta(model: nn.Module, x: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    return copy.deepcopy(model).to("meta"), torch.empty_like(x, device="meta")


@pytest.mark.parametrize("name", CASES)
def test_macs_are_flop_counter_mode_halved(name):
    """FlopCounterMode has no formula for the CPU's fused kernels (flash attention, the
    encoder's fast path, mkldnn's LSTM): it counts the model unfused, on the meta device."""
    model, x = made(name)
    p = profile(model, x)
    unfused, xm = made(name, "meta")
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with FlopCounterMode(display=False) as flops, torch.no_grad():
            unfused(xm)
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    assert p.macs > 0 and p.macs == flops.get_total_flops() // 2


@pytest.mark.parametrize("name", CASES)
def test_the_watched_path_counts_the_same(name):
    model, x = made(name)
    fast, slow, _, _ = both_ways(model, x)
    assert_same(fast, slow)


@pytest.mark.parametrize("name", CASES)
def test_meta_counts_the_same_where_the_cpu_runs_no_fused_kernel(name):
    """docs/profiler.md: MACs and parameters always; the rest unless the CPU fuses."""
    real = counts(profile(*made(name)))
    meta = counts(profile(*made(name, "meta")))
    for key in ("params", "weights", "macs"):
        assert real[key] == meta[key], key
    rest = ("elementwise_ops", "activations", "peak_activations")
    fused = CASES[name][2]
    assert any(real[k] != meta[k] for k in rest) == fused, [(real[k], meta[k]) for k in rest]


@pytest.mark.parametrize("name", CASES)
def test_identical_calls_count_the_same_and_change_nothing(name):
    model, x = made(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    runs = [counts(profile(model, x)) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and not model.training


def test_the_documented_gaps_between_meta_and_the_cpu():
    """docs/profiler.md: a small MultiheadAttention books about 9x the activations on meta;
    a two-layer GRU a lower peak."""
    mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()

    class Self(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = mha

        def forward(self, x):
            return self.a(x, x, x, need_weights=False)[0]

    x = torch.randn(2, 10, 32)
    real, meta = profile(Self(), x), profile(*on_meta(Self(), x))
    assert 8 < meta.activations / real.activations < 10
    gru, xs = nn.GRU(10, 16, num_layers=2).eval(), torch.randn(7, 3, 10)
    assert profile(*on_meta(gru, xs)).peak_activations < profile(gru, xs).peak_activations


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_a_masked_encoder_on_nested_tensors_counts_the_same_each_call():
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
    encoder = nn.TransformerEncoder(layer, 2).eval()
    src, mask = torch.randn(3, 6, 16), torch.zeros(3, 6, dtype=torch.bool)
    mask[0, 2:], mask[2, 5:] = True, True
    runs = [counts(profile(encoder, src, src_key_padding_mask=mask)) for _ in range(2)]
    assert runs[0] == runs[1] and runs[0]["macs"] > 0
