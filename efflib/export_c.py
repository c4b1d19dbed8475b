"""An integer model as a standalone C program: a header of weights and a main with no malloc.

`export(model, input_shape)` writes every step of an `efflib.quant.integer.IntegerModel`
as C with the same integer rules: the input quantized with `rintf` (round half to
even, as torch.round), int8 weights, int32 accumulators, the 31-bit fixed-point
multiplier with halves rounded up, ReLU in the clamp, max pooling, a global
average pool rounding halves to even. Its outputs are therefore the reference's
integers exactly, on every image. The program reads raw float32 images (N x C x
H x W, native byte order) from the file named on its command line and prints
one line per image: the predicted class, then the output integers.
Right shifts of negative numbers are arithmetic with every mainstream C compiler.
"""

import math
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from efflib import cc
from efflib.graded import reference
from efflib.quant.integer import IntegerModel, QuantizedLayer


def _array(ctype: str, name: str, values: torch.Tensor) -> str:
    flat = ", ".join(str(int(v)) for v in values.flatten().tolist())
    return f"static const {ctype} {name}[{values.numel()}] = {{{flat}}};\n"


def _shapes(model: IntegerModel, input_shape: tuple[int, int, int]) -> list[tuple]:
    """The (C, H, W) entering each step, and leaving the last (a vector is (n, 1, 1))."""
    q = torch.zeros((1, *input_shape), dtype=torch.int64)
    shapes = [tuple(input_shape)]
    for step in model.steps:
        q = IntegerModel([step], model.input, model.output).forward_int(q)
        shapes.append(tuple(q.shape[1:]) + (1,) * (4 - q.dim()))
    return shapes


def _conv(i: int, layer: QuantizedLayer, cin: tuple, cout: tuple) -> str:
    c, h, w = cin
    m, p, q = cout
    if layer.conv is not None:
        conv = layer.conv
        if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
            raise ValueError("export supports convs with groups=1, dilation=1, zero padding")
        r, s = conv.kernel_size
        (u, _), (pad, _) = conv.stride, conv.padding
    else:
        r = s = u = 1
        pad = 0
    qmin = layer.y.zero_point if layer.relu else 0
    return f"""
static void step{i}(const uint8_t *in, uint8_t *out) {{  /* ({c},{h},{w}) -> ({m},{p},{q}) */
    for (int m = 0; m < {m}; m++)
        for (int p = 0; p < {p}; p++)
            for (int q = 0; q < {q}; q++) {{
                int32_t acc = B{i}[m];
                for (int c = 0; c < {c}; c++)
                    for (int r = 0; r < {r}; r++) {{
                        int h = p * {u} + r - {pad};
                        if (h < 0 || h >= {h}) continue;
                        for (int s = 0; s < {s}; s++) {{
                            int w = q * {u} + s - {pad};
                            if (w < 0 || w >= {w}) continue;
                            acc += ((int32_t)in[(c * {h} + h) * {w} + w] - {layer.x.zero_point})
                                   * (int32_t)W{i}[((m * {c} + c) * {r} + r) * {s} + s];
                        }}
                    }}
                int total = 31 + SH{i}[m];
                int64_t y = ((int64_t)acc * M{i}[m] + ((int64_t)1 << (total - 1))) >> total;
                y += {layer.y.zero_point};
                out[(m * {p} + p) * {q} + q] = (uint8_t)(y < {qmin} ? {qmin} : (y > 255 ? 255 : y));
            }}
}}
"""


def _maxpool(i: int, layer: nn.MaxPool2d, cin: tuple, cout: tuple) -> str:
    k = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
    u = layer.stride if isinstance(layer.stride, int) else layer.stride[0]
    if layer.padding not in (0, (0, 0)):
        raise ValueError("export supports max pooling without padding")
    c, h, w = cin
    _, p, q = cout
    return f"""
static void step{i}(const uint8_t *in, uint8_t *out) {{  /* max pool {k}x{k} */
    for (int c = 0; c < {c}; c++)
        for (int p = 0; p < {p}; p++)
            for (int q = 0; q < {q}; q++) {{
                uint8_t best = 0;
                for (int r = 0; r < {k}; r++)
                    for (int s = 0; s < {k}; s++) {{
                        uint8_t v = in[(c * {h} + p * {u} + r) * {w} + q * {u} + s];
                        if (v > best) best = v;
                    }}
                out[(c * {p} + p) * {q} + q] = best;
            }}
}}
"""


def _avgpool(i: int, zero_point: int, cin: tuple) -> str:
    c, h, w = cin
    n = h * w
    return f"""
static void step{i}(const uint8_t *in, uint8_t *out) {{  /* global average, halves to even */
    for (int c = 0; c < {c}; c++) {{
        int32_t t = 0;
        for (int k = 0; k < {n}; k++) t += (int32_t)in[c * {n} + k] - {zero_point};
        int32_t d = t / {n};
        if (t % {n} != 0 && t < 0) d -= 1;           /* floor division */
        int32_t twice = 2 * (t - d * {n});
        int32_t up = twice > {n} || (twice == {n} && (d & 1));
        out[c] = (uint8_t)(d + up + {zero_point});
    }}
}}
"""


@dataclass
class CProgram:
    """A standalone C program: `header` holds the weights, `source` the network and main."""

    header: str
    source: str
    outputs: int

    def build(self, name: str = "digits_int8") -> Path:
        """Compile it (the header is inlined, so the build is one file) and return the path."""
        return cc.build(self.source.replace('#include "weights.h"\n', self.header),
                        kind="exe", name=name)

    @reference("deploy")  # Lab 06 Q7's answer
    def run(self, exe: Path, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the program on images `x` in a separate process: (predictions, output integers)."""
        with tempfile.NamedTemporaryFile(suffix=".f32") as f:
            f.write(x.detach().to(torch.float32).contiguous().numpy().tobytes())
            f.flush()
            done = subprocess.run([str(exe), f.name], capture_output=True, text=True,
                                  timeout=600, check=True)
        rows = [list(map(int, line.split())) for line in done.stdout.splitlines()]
        values = torch.tensor(rows, dtype=torch.int64).reshape(len(rows), self.outputs + 1)
        return values[:, 0], values[:, 1:]


def export(model: IntegerModel, input_shape: tuple[int, int, int]) -> CProgram:
    """The C header and program that compute `model` on images of shape (C, H, W)."""
    shapes = _shapes(model, input_shape)
    largest = max(c * h * w for c, h, w in shapes)
    header = ["/* weights of an int8 network, written by efflib.export_c */\n",
              "#include <stdint.h>\n"]
    body, zp = [], model.input.zero_point
    for i, (kind, layer) in enumerate(model.steps):
        if kind == "quant":
            header += [_array("int8_t", f"W{i}", layer.weight),
                       _array("int32_t", f"B{i}", layer.bias),
                       _array("int32_t", f"M{i}", layer.m0),
                       _array("int8_t", f"SH{i}", layer.shift)]
            body.append(_conv(i, layer, shapes[i], shapes[i + 1]))
            zp = layer.y.zero_point
        elif kind == "maxpool":
            body.append(_maxpool(i, layer, shapes[i], shapes[i + 1]))
        elif kind == "avgpool":
            body.append(_avgpool(i, zp, shapes[i]))
        else:
            body.append(f"\nstatic void step{i}(const uint8_t *in, uint8_t *out) {{  "
                        f"/* flatten */\n    for (int k = 0; k < {math.prod(shapes[i])}; k++) "
                        "out[k] = in[k];\n}\n")
    c, h, w = input_shape
    n_in, outputs = c * h * w, math.prod(shapes[-1])
    calls = "\n".join(f"    step{i}({'a' if i % 2 == 0 else 'b'}, {'b' if i % 2 == 0 else 'a'});"
                      for i in range(len(model.steps)))
    last = "b" if len(model.steps) % 2 == 1 else "a"
    inv = f"(1.0f / {float(model.input.scale)!r}f)"
    source = f"""/* An int8 CNN as plain C, with no Python, torch or heap (efflib.export_c). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include "weights.h"
{''.join(body)}
static float image[{n_in}];
static uint8_t a[{largest}], b[{largest}];

int main(int argc, char **argv) {{
    if (argc != 2) {{ fprintf(stderr, "usage: %s IMAGES.f32\\n", argv[0]); return 2; }}
    FILE *f = fopen(argv[1], "rb");
    if (!f) {{ perror(argv[1]); return 2; }}
    const float inv_scale = {inv};
    while (fread(image, sizeof(float), {n_in}, f) == {n_in}) {{
        for (int k = 0; k < {n_in}; k++) {{
            float v = rintf(image[k] * inv_scale) + {model.input.zero_point};
            a[k] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
        }}
{calls}
        int best = 0;
        for (int k = 1; k < {outputs}; k++) if ({last}[k] > {last}[best]) best = k;
        printf("%d", best);
        for (int k = 0; k < {outputs}; k++) printf(" %d", {last}[k]);
        printf("\\n");
    }}
    fclose(f);
    return 0;
}}
"""
    return CProgram("".join(header), source, outputs)

