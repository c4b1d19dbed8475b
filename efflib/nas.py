"""A tiny architecture search space for the 8x8 digits, and a per-layer latency table.

The latency predictor follows ProxylessNAS (Cai et al., https://arxiv.org/abs/1812.00332)
and MCUNet (Lin et al., https://arxiv.org/abs/2007.10319): measure each distinct layer
once on the target device, then predict a network's latency as the sum over its layers,
so a search can reject slow candidates without building or timing them.

A configuration is {"width": w, "depth": d, "kernel": k, "expand": e}:

    stem   3x3 conv 1 -> w at 8x8, BN, ReLU
    block  d times: 1x1 conv c -> e*c (left out when e == 1), BN, ReLU;
           k x k depthwise conv with stride s, BN, ReLU; 1x1 conv e*c -> c_out, BN and no
           ReLU (MobileNetV2's linear bottleneck, Sandler et al., https://arxiv.org/abs/1801.04381:
           a ReLU on the narrow projection would zero what the next block needs).
           Blocks 0 and 1 have stride 2 and double the channels (8x8 -> 4x4 -> 2x2);
           block 2 keeps both.
    head   global average pool, linear c -> 10
"""

import random
from collections.abc import Iterable, Mapping

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from efflib.graded import reference
from efflib.latency import measure_latency, one_noise_warning
from efflib.models.blocks import conv_norm_act

SPACE = {"width": (8, 12, 16), "depth": (1, 2, 3), "kernel": (3, 5), "expand": (1, 2, 4)}
Key = tuple  # ("stem", w) | ("block", c_in, c_out, kernel, expand, stride, res) | ("head", c, res)


def check_config(config: Mapping) -> dict:
    """`config` as a plain dict, or ValueError naming what is not in SPACE."""
    if not isinstance(config, Mapping) or set(config) != set(SPACE):
        raise ValueError(f"a configuration has exactly the keys {sorted(SPACE)}, got "
                         f"{sorted(config) if isinstance(config, Mapping) else config!r}")
    for name, choices in SPACE.items():
        if config[name] not in choices:
            raise ValueError(f"{name} must be one of {choices}, got {config[name]!r}")
    return dict(config)


def all_configs() -> list[dict]:
    """Every configuration of SPACE (54), in a fixed order."""
    configs = [{}]
    for name, choices in SPACE.items():
        configs = [{**c, name: v} for c in configs for v in choices]
    return configs


def sample(rng: random.Random) -> dict:
    """A configuration drawn uniformly from SPACE."""
    return {name: rng.choice(choices) for name, choices in SPACE.items()}


@reference("latency_predictor")
def layer_keys(config: Mapping) -> list[Key]:
    """The table keys of a configuration's layers, stem first, head last."""
    c = check_config(config)
    keys: list[Key] = [("stem", c["width"])]
    channels, res = c["width"], 8
    for i in range(c["depth"]):
        stride = 2 if i < 2 else 1
        out = channels * 2 if stride == 2 else channels
        keys.append(("block", channels, out, c["kernel"], c["expand"], stride, res))
        channels, res = out, res // stride
    keys.append(("head", channels, res))
    return keys


def layer(key: Key) -> nn.Sequential:
    """The layer a table key names, freshly initialised."""
    kind = key[0]
    if kind == "stem":
        return nn.Sequential(*conv_norm_act(1, key[1], 3))
    if kind == "block":
        _, c_in, c_out, k, e, stride, _ = key
        mid = c_in * e
        expand = conv_norm_act(c_in, mid, 1) if e > 1 else []
        return nn.Sequential(*expand, *conv_norm_act(mid, mid, k, stride, groups=mid),
                             *conv_norm_act(mid, c_out, 1, activation=None))  # linear bottleneck
    if kind == "head":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(key[1], 10))
    raise ValueError(f"unknown layer key {key!r}")


def input_shape(key: Key) -> tuple[int, ...]:
    """The batch-1 input of the layer a key names."""
    if key[0] == "stem":
        return (1, 1, 8, 8)
    if key[0] == "block":
        return (1, key[1], key[6], key[6])
    return (1, key[1], key[2], key[2])


def tiny_net(config: Mapping) -> nn.Sequential:
    """The network of a configuration: an nn.Sequential of its layers (stem, blocks, head)."""
    return nn.Sequential(*(layer(k) for k in layer_keys(config)))


def measure_table(configs: Iterable[Mapping], repeats: int = 30, progress: bool = True
                  ) -> dict[Key, float]:
    """Median seconds per batch-1 call of each distinct layer of `configs`, on this CPU."""
    keys = list(dict.fromkeys(k for c in configs for k in layer_keys(c)))
    table = {}
    with one_noise_warning(f"of the {len(keys)} layer latencies"):
        for key in tqdm(keys, desc="layers timed", disable=not progress):
            x = torch.randn(input_shape(key))
            table[key] = measure_latency(layer(key).eval(), x, warmup=3, repeats=repeats).median
    return table


@reference("latency_predictor")
def predict_latency(config: Mapping, table: Mapping[Key, float]) -> float:
    """Predicted seconds per batch-1 call: the sum of the table's entries for its layers."""
    return sum(table[k] for k in layer_keys(config))
