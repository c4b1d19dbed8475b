"""Handwriting no one has trained on: digits drawn from a key, read by a panel.

scikit-learn ships every one of its 1,797 digits to every student, so no split of
them can be kept from a model's training. "Test accuracy" questions are also
judged on digits drawn instead (judging.handwriting). The grader draws them from
a key derived from the course's secret (`held_out_digits`): a student cannot have
trained on them, and training on the public test split buys nothing there.
Students see the same kind of digits drawn from a public seed (`public_digits`),
so a model that passes its visible check passes the grader's too. A panel of
three small models trained on the public training split keeps only the drawn
digits all three read correctly, so what is left looks like the digits students
train on (a badly drawn stroke is not counted against anyone), and each class
gets the same number of images. Images are normalised as efflib.data.digits(seed=0)
normalises its own.
"""

import hashlib
import hmac
import os
import random
from pathlib import Path

import torch
import torch.nn as nn

from autograde.judging import handwriting
from efflib import models
from efflib.data import digits
from efflib.train import fit

PER_CLASS = 150
PUBLIC_KEY = b"efflab's public handwriting: anyone may draw it"
PUBLIC_PER_CLASS = 300  # twice the grader's: its own noise adds less to the comparison
_PUBLIC: list[tuple[torch.Tensor, torch.Tensor]] = []


def _panel() -> list[nn.Module]:
    """Three models of different kinds, trained on the public training split only, each
    from a seed of its own (the same panel every time)."""
    loaders = digits(seed=0)
    kinds = [
        (lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)),
         15, 100),
        (models.digit_cnn, 10, 101),
        (lambda: nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)), 15, 102),
    ]
    panel = []
    for make, epochs, seed in kinds:
        torch.manual_seed(seed)
        model = make()
        fit(model, loaders.train, epochs=epochs, seed=seed, device="cpu", progress=False)
        panel.append(model.eval())
    return panel


def held_out_digits(key: bytes, per_class: int = PER_CLASS) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 1, 8, 8), labels (N,)): `per_class` drawn digits of each class that the
    panel reads correctly, drawn from `key` (the same key gives the same draws)."""
    r = random.Random(hmac.new(key, b"held-out digits", hashlib.sha256).hexdigest())
    loaders = digits(seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the panel trains and reads alike wherever the grader runs
    try:
        with torch.random.fork_rng():  # the caller's random state is left as it was
            panel = _panel()
        kept: dict[int, list[torch.Tensor]] = {c: [] for c in range(10)}
        for _ in range(20):
            wanted = [c for c in range(10) for _ in range(
                max(0, per_class - len(kept[c])) * 2)]
            if not wanted:
                break
            images = (handwriting.draw(wanted, r) / 16 - loaders.mean) / loaders.std
            images = images.unsqueeze(1)                                   # (B, 1, 8, 8)
            labels = torch.tensor(wanted)
            with torch.no_grad():
                agreed = torch.stack([m(images).argmax(1) == labels for m in panel]).all(0)
            for image, label in zip(images[agreed], labels[agreed], strict=True):
                if len(kept[int(label)]) < per_class:
                    kept[int(label)].append(image)
    finally:
        torch.set_num_threads(threads)
    short = [c for c in range(10) if len(kept[c]) < per_class]
    if short:
        raise RuntimeError(f"could not draw {per_class} readable digits of class {short[0]}")
    x = torch.stack([image for c in range(10) for image in kept[c]])
    y = torch.tensor([c for c in range(10) for _ in kept[c]])
    return x, y


def public_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The public sample: 300 digits of each class drawn from a key anyone may read, as the
    grader draws its own; made once (seconds), then kept in this process and on disk."""
    if _PUBLIC:
        return _PUBLIC[0]
    cache = Path(os.environ.get("EFFLAB_CACHE", Path.home() / ".cache" / "efflab"))
    path = cache / f"public-digits-{hashlib.sha256(PUBLIC_KEY).hexdigest()[:12]}.pt"
    try:
        x, y = torch.load(path, weights_only=True)
        if x.shape != (10 * PUBLIC_PER_CLASS, 1, 8, 8) or y.shape != (10 * PUBLIC_PER_CLASS,):
            raise ValueError("not this sample")
    except Exception:  # noqa: BLE001 - missing or stale: drawn again
        x, y = held_out_digits(PUBLIC_KEY, PUBLIC_PER_CLASS)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save((x, y), path)
        except OSError:
            pass  # a read-only home: drawn again next time
    _PUBLIC.append((x, y))
    return x, y
