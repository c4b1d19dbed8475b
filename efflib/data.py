"""scikit-learn's bundled 8x8 handwritten digits as seeded train/test DataLoaders (offline).

The data ships inside scikit-learn (1,797 images from UCI's optical digits set,
https://archive.ics.uci.edu/dataset/80), so nothing is downloaded.
"""

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from efflib import inputs


@dataclass(frozen=True)
class Loaders:
    """Train and test loaders plus what a model needs to know about them."""

    train: DataLoader
    test: DataLoader
    image_size: int
    num_classes: int = 10
    mean: float = 0.0  # of the training images scaled to [0, 1]: x -> (x - mean) / std
    std: float = 1.0


def digit_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 images (N, 8, 8), values 0 to 16, and their labels (N,), read from the
    CSV inside scikit-learn: importing sklearn.datasets takes about a second, reading 20 ms."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise ImportError("efflib.data.digits needs scikit-learn installed (it ships the data)")
    with gzip.open(Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)  # (N, 65): pixels, label
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def digits(batch_size: int = 64, test_fraction: float = 0.25, seed: int = 0,
           resize: int | None = None) -> Loaders:
    """Stratified, seeded split of the digits, scaled to [0, 1] and normalised by train stats.

    Args:
        batch_size: samples per training batch (the test loader uses 512).
        test_fraction: share of each class held out for testing, in (0, 1).
        seed: fixes the split and the training shuffle order.
        resize: side length to resize the 8x8 images to (bilinear), e.g. 32 for LeNet-5.
    """
    inputs.count(batch_size, "batch_size", "digits")
    inputs.count(seed, "seed", "digits", minimum=0)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if resize is not None and resize < 1:
        raise ValueError(f"resize must be a positive side length, got {resize}")
    images, labels = digit_arrays()
    x = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    y = torch.tensor(labels, dtype=torch.long)                         # (N,)
    gen = torch.Generator().manual_seed(seed)
    test_idx = []
    for c in range(10):  # the same share of every class in the test set
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        test_idx.append(idx[: round(len(idx) * test_fraction)])
    is_test = torch.zeros(len(y), dtype=torch.bool)
    is_test[torch.cat(test_idx)] = True
    if resize is not None and resize != 8:
        x = F.interpolate(x, size=(resize, resize), mode="bilinear", align_corners=False)
    mean, std = x[~is_test].mean(), x[~is_test].std()
    x = (x - mean) / std
    train = TensorDataset(x[~is_test], y[~is_test])
    test = TensorDataset(x[is_test], y[is_test])
    shuffle_gen = torch.Generator().manual_seed(seed + 1)
    return Loaders(
        train=DataLoader(train, batch_size=batch_size, shuffle=True, generator=shuffle_gen),
        test=DataLoader(test, batch_size=512, shuffle=False),
        image_size=x.shape[-1],
        mean=float(mean),
        std=float(std),
    )
