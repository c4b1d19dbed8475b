"""autograde.judging.heldout: the grader's digits come from its key, look like the digits
students train on, and training on the public test split buys nothing there."""

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

from autograde.judging.heldout import PER_CLASS, held_out_digits
from efflib import data, train

KEY = b"a course's key for these tests, 32+ bytes"
_DIGITS: dict[bytes, tuple] = {}


def digits_of(key: bytes):
    if key not in _DIGITS:
        _DIGITS[key] = held_out_digits(key)
    return _DIGITS[key]


def test_the_same_key_gives_the_same_digits_and_another_key_others():
    x, y = digits_of(KEY)
    x2, y2 = held_out_digits(KEY)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    other, _ = digits_of(KEY[::-1])
    assert not torch.equal(x, other)


def test_every_class_has_the_same_share_and_the_images_are_normalised_like_digits():
    x, y = digits_of(KEY)
    assert x.shape == (10 * PER_CLASS, 1, 8, 8)
    assert torch.bincount(y).tolist() == [PER_CLASS] * 10
    loaders = data.digits(seed=0)
    low = (0 - loaders.mean) / loaders.std  # a blank pixel, as digits() scales it
    assert abs(float(x.min()) - low) < 1e-5
    assert abs(float(x.mean()) - float(loaders.test.dataset.tensors[0].mean())) < 0.25


def nearest_neighbour(images: torch.Tensor, labels: torch.Tensor) -> nn.Sequential:
    """A lookup of `images` as a model: each input gets the label of the nearest one
    (a Conv2d in front, so that it passes for a CNN). No training at all."""
    n = len(labels)
    t = images.reshape(n, -1)
    m = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Flatten(), nn.Linear(64, n), nn.Softmax(dim=1),
                      nn.Linear(n, 10, bias=False))
    with torch.no_grad():
        m[0].weight.fill_(1.0)
        m[0].bias.zero_()
        m[2].weight.copy_(100 * t)                  # -50 |x - t|^2, up to a term in x
        m[2].bias.copy_(-50 * (t * t).sum(1))
        m[4].weight.copy_(nn.functional.one_hot(labels, 10).T.float())
    return m.eval()


def test_a_model_made_of_the_test_images_scores_there_as_one_made_of_training_images():
    """The memoriser: 200 test images as a lookup passes the test split's 95% without any
    training; on new handwriting it does no better than the same lookup of 200 training
    images, and both stay below the grader's goal there."""
    from autograde.checks.api import SLACK
    from autograde.checks.lab03_architectures import HANDWRITING

    loaders = data.digits(seed=0)
    held = DataLoader(TensorDataset(*digits_of(KEY)), batch_size=512)
    test_x, test_y = loaders.test.dataset.tensors
    train_x, train_y = loaders.train.dataset.tensors
    memoriser = nearest_neighbour(test_x[:200], test_y[:200])
    twin = nearest_neighbour(train_x[:200], train_y[:200])
    assert sum(p.numel() for p in memoriser.parameters()) <= 20_000
    assert train.evaluate(memoriser, loaders.test) >= 0.95
    assert train.evaluate(twin, loaders.test) < 0.90
    on_held = train.evaluate(memoriser, held)
    assert on_held < HANDWRITING - SLACK
    assert on_held <= train.evaluate(twin, held) + 0.03
