"""autograde.judging.handwriting: digits drawn from strokes, as UCI's were counted."""

import random

import torch

from autograde.judging import handwriting


def test_draws_are_uci_style_block_counts():
    x = handwriting.draw([d for d in range(10) for _ in range(20)], random.Random(0))
    assert x.shape == (200, 8, 8) and x.dtype == torch.float32
    assert bool((x >= 0).all() and (x <= 16).all()) and bool((x == x.round()).all())
    assert 3.5 < float(x.mean()) < 6.0, "about as much ink as scikit-learn's digits (4.9)"
    assert float(x[:, :, 0].mean()) < float(x[:, :, 3].mean()), "centred, not at the edge"


def test_the_same_generator_draws_the_same_digits_and_another_others():
    labels = list(range(10)) * 3
    a = handwriting.draw(labels, random.Random("k"))
    assert torch.equal(a, handwriting.draw(labels, random.Random("k")))
    assert not torch.equal(a, handwriting.draw(labels, random.Random("other")))


def test_every_digit_has_styles_that_differ():
    r = random.Random(1)
    for digit in range(10):
        draws = handwriting.draw([digit] * 12, r)
        assert len({tuple(d.flatten().tolist()) for d in draws}) == 12, digit
        assert handwriting.STYLES[digit], digit


def test_inking_covers_a_stroke_half_a_pen_wide():
    """A horizontal stroke across the box, pen 4: rows 14-17 inked (centres within 2)."""
    line = torch.tensor([[0.0, 16.0], [32.0, 16.0]], dtype=torch.float64)
    bitmap = handwriting._ink([line], 4.0)
    assert bitmap.sum(1).tolist() == [0] * 14 + [32] * 4 + [0] * 14
