"""The conv-norm-activation block every CNN here is built from.

Ioffe and Szegedy, Batch Normalization, https://arxiv.org/abs/1502.03167: the conv has
no bias, since the norm's shift replaces it (as torchvision's Conv2dNormActivation).
"""

from collections.abc import Callable

import torch.nn as nn


def conv_norm_act(c_in: int, c_out: int, kernel_size: int | tuple[int, int], stride: int = 1,
                  groups: int = 1, activation: Callable[..., nn.Module] | None = nn.ReLU,
                  eps: float = 1e-5) -> list[nn.Module]:
    """Conv (no bias, "same" padding for odd kernels) + BatchNorm (+ `activation`, in place).

    A list, so that a model may splat it into its own nn.Sequential (flat names, as the
    course's digit models have) or wrap it in one.
    """
    k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    layers = [nn.Conv2d(c_in, c_out, k, stride, (k[0] // 2, k[1] // 2), groups=groups,
                        bias=False),
              nn.BatchNorm2d(c_out, eps=eps)]
    return layers + [activation(inplace=True)] if activation is not None else layers
