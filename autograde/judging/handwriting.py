"""Handwriting-like 8x8 digits drawn from strokes, as UCI's optical digits were made.

Each digit is a few pen strokes (straight or Catmull-Rom curves through control
points) in one of several common styles. A draw jitters the control points,
slants, rotates and squeezes the glyph, picks a pen width, fits it into a 32x32
box, inks every pixel within half a pen width of a stroke and counts the inked
pixels of each 4x4 block, as UCI's preprocessing did for scikit-learn's digits
(https://archive.ics.uci.edu/dataset/80): values 0-16 on an 8x8 grid. The grader
judges accuracy on such digits (judging.heldout), which no student has seen.
"""

import math
import random

import torch

LINE, CURVE = "line", "curve"
# (x, y) in a unit box, y downwards; each style is a list of strokes
STYLES: dict[int, list[list[tuple[str, list[tuple[float, float]]]]]] = {
    0: [[(CURVE, [(.5, 0), (.85, .18), (.92, .5), (.8, .85), (.5, 1), (.2, .85), (.08, .5),
                  (.15, .15), (.5, 0), (.85, .18)])],
        [(CURVE, [(.55, 0), (.85, .3), (.8, .8), (.45, 1), (.15, .75), (.18, .25), (.55, 0),
                  (.85, .3)])]],
    1: [[(LINE, [(.15, .3), (.6, 0), (.55, 1)])],
        [(LINE, [(.2, .3), (.6, 0), (.55, 1)]), (LINE, [(.25, 1), (.85, 1)])],
        [(LINE, [(.2, .3), (.55, 0), (.55, 1)]), (LINE, [(.55, .3), (.2, .3)])],
        [(LINE, [(.35, 0), (.3, 1), (.85, .98)])]],
    2: [[(CURVE, [(.12, .28), (.35, .03), (.68, .02), (.86, .22), (.78, .45), (.48, .72),
                  (.12, 1)]), (LINE, [(.12, 1), (.92, .97)])],
        [(CURVE, [(.15, .2), (.5, 0), (.85, .25), (.6, .6), (.2, .9), (.3, .7), (.45, .95),
                  (.92, 1)])],
        [(CURVE, [(.15, .2), (.5, 0), (.85, .25), (.6, .6), (.15, .98)]),
         (CURVE, [(.15, .98), (.4, .88), (.9, 1)])]],
    3: [[(CURVE, [(.12, .12), (.5, 0), (.82, .15), (.75, .38), (.42, .5)]),
         (CURVE, [(.42, .5), (.8, .6), (.88, .85), (.5, 1), (.1, .88)])],
        [(LINE, [(.12, 0), (.88, 0), (.42, .42)]),
         (CURVE, [(.42, .42), (.85, .58), (.85, .86), (.45, 1), (.1, .86)])]],
    4: [[(LINE, [(.62, 0), (.08, .66), (.95, .66)]), (LINE, [(.7, .25), (.7, 1)])],
        [(LINE, [(.22, 0), (.14, .6), (.92, .6)]), (LINE, [(.75, 0), (.75, 1)])],
        [(LINE, [(.55, 0), (.1, .6), (.9, .55)]), (LINE, [(.68, 0), (.65, 1)])]],
    5: [[(LINE, [(.88, 0), (.28, 0), (.22, .45)]),
         (CURVE, [(.22, .45), (.55, .36), (.86, .55), (.85, .82), (.52, 1), (.12, .9)])],
        [(LINE, [(.28, 0), (.22, .45)]), (LINE, [(.28, 0), (.9, .02)]),
         (CURVE, [(.22, .45), (.6, .4), (.85, .65), (.6, .95), (.15, .9)])]],
    6: [[(CURVE, [(.78, 0), (.42, .15), (.15, .55), (.2, .9), (.5, 1), (.82, .85), (.82, .6),
                  (.5, .48), (.18, .65)])],
        [(CURVE, [(.7, 0), (.3, .3), (.2, .75), (.5, 1), (.8, .8), (.6, .5), (.25, .6)])]],
    7: [[(LINE, [(.08, .15), (.1, 0), (.92, 0), (.45, 1)])],
        [(LINE, [(.08, 0), (.92, 0), (.45, 1)]), (LINE, [(.3, .5), (.9, .5)])],
        [(LINE, [(.08, .12), (.12, 0), (.92, 0)]), (CURVE, [(.92, 0), (.7, .45), (.5, 1)]),
         (LINE, [(.35, .5), (.95, .48)])]],
    8: [[(CURVE, [(.5, .48), (.2, .3), (.25, .05), (.5, 0), (.75, .05), (.8, .3), (.5, .48),
                  (.15, .7), (.2, .95), (.5, 1), (.8, .95), (.85, .7), (.5, .48), (.2, .3)])],
        [(CURVE, [(.5, .45), (.25, .22), (.5, 0), (.75, .22), (.5, .45), (.2, .72), (.5, 1),
                  (.8, .72), (.5, .45)])]],
    9: [[(CURVE, [(.82, .22), (.55, .45), (.22, .4), (.14, .18), (.38, 0), (.72, .03),
                  (.86, .25), (.8, .6), (.62, 1)])],
        [(CURVE, [(.82, .2), (.55, .42), (.2, .35), (.18, .1), (.5, 0), (.82, .2)]),
         (LINE, [(.82, .2), (.76, 1)])]],
}
SIDE, BLOCK = 32, 4  # UCI's bitmaps, and the blocks counted into one 8x8 value


def _curve(points: torch.Tensor, per_span: int = 10) -> torch.Tensor:
    """A Catmull-Rom spline through `points` (K, 2), sampled densely."""
    p = torch.cat([points[:1], points, points[-1:]])
    t = torch.linspace(0, 1, per_span, dtype=torch.float64)[:, None]
    spans = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        spans.append(0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                            + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3))
    return torch.cat(spans)


def _strokes(digit: int, r: random.Random) -> tuple[list[torch.Tensor], float]:
    """One draw of `digit`: its strokes as polylines in pixels, and the pen width."""
    style = r.choice(STYLES[digit])
    angle, slant = math.radians(r.uniform(-12, 12)), r.uniform(-0.35, 0.15)
    squeeze = r.uniform(0.55, 0.85)
    c, s = math.cos(angle), math.sin(angle)
    shape = torch.tensor([[c, -s], [s, c]], dtype=torch.float64) @ torch.tensor(
        [[squeeze, slant], [0.0, 1.0]], dtype=torch.float64)
    lines = []
    for kind, points in style:
        pts = torch.tensor([(x + r.gauss(0, .04), y + r.gauss(0, .04)) for x, y in points],
                           dtype=torch.float64)
        lines.append((_curve(pts) if kind == CURVE else pts) @ shape.T)
    pen = r.uniform(4.0, 6.0)
    every = torch.cat(lines)
    lo, hi = every.min(0).values, every.max(0).values
    scale = min((r.uniform(30, 32) - pen) / max(float(hi[1] - lo[1]), 1e-6),
                (SIDE - 1 - pen) / max(float(hi[0] - lo[0]), 1e-6))
    centre = torch.tensor([SIDE / 2 + r.uniform(-1.5, 1.5), SIDE / 2 + r.uniform(-1, 1)],
                          dtype=torch.float64)
    return [(line - (lo + hi) / 2) * scale + centre for line in lines], pen


def _dense(line: torch.Tensor, step: float = 0.25) -> torch.Tensor:
    """Points along a polyline (K, 2) no more than `step` pixels apart."""
    a, b = line[:-1], line[1:]
    counts = ((b - a).norm(dim=1) / step).ceil().clamp_min(1).long()       # (K-1,)
    seg = torch.repeat_interleave(torch.arange(len(a)), counts)
    start = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    t = ((torch.arange(len(seg)) - start) / counts[seg])[:, None].double()
    return torch.cat([a[seg] + t * (b - a)[seg], line[-1:]])


_OFFSETS = torch.stack(torch.meshgrid(torch.arange(-4, 5), torch.arange(-4, 5),
                                      indexing="xy"), -1).reshape(-1, 2)  # (81, 2)


def _ink(lines: list[torch.Tensor], pen: float) -> torch.Tensor:
    """A 32x32 bitmap of the pixels whose centre lies within half a pen width of a stroke
    (the union of discs along densely sampled strokes)."""
    points = torch.cat([_dense(line) for line in lines])                   # (M, 2)
    pixels = points.floor().long()[:, None] + _OFFSETS[None]               # (M, 81, 2)
    near = ((pixels.double() + .5 - points[:, None]).norm(dim=-1) <= pen / 2)
    near &= ((pixels >= 0) & (pixels < SIDE)).all(-1)
    x, y = pixels[near].unbind(-1)
    bitmap = torch.zeros(SIDE, SIDE, dtype=torch.bool)
    bitmap[y, x] = True
    return bitmap


def draw(labels: list[int], r: random.Random) -> torch.Tensor:
    """One image per label in `labels`: (N, 8, 8) block counts from 0 to 16."""
    bitmaps = torch.stack([_ink(*_strokes(digit, r)) for digit in labels])  # (N, 32, 32)
    return bitmaps.reshape(-1, 8, BLOCK, 8, BLOCK).sum((2, 4)).to(torch.float32)
