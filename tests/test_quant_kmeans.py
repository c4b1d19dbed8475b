"""efflib.quant.kmeans against scikit-learn's KMeans, and centroid fine-tuning."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from sklearn.cluster import KMeans

from efflib.quant.huffman import stored_size
from efflib.quant.kmeans import WeightSharing, centroid_grad, kmeans
from efflib.quant.pipeline import compress
from efflib.size import shared_weight_bits, tensor_bits


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_clustering_equals_sklearn_from_the_same_start(bits):
    w = torch.randn(32, 16, 3, 3, generator=torch.Generator().manual_seed(bits))
    book = kmeans(w, bits)
    k = 2**bits
    start = np.linspace(float(w.min()), float(w.max()), k).reshape(-1, 1)
    ref = KMeans(k, init=start, n_init=1, max_iter=300, tol=0, algorithm="lloyd").fit(
        w.double().reshape(-1, 1).numpy())
    assert np.array_equal(book.indices.reshape(-1).numpy(), ref.labels_)
    assert book.inertia(w) == pytest.approx(ref.inertia_, rel=1e-9)
    assert book.centroids.shape == (k,) and book.indices.shape == w.shape
    assert int(book.indices.max()) < k


def test_codebook_is_deterministic_and_sorted_by_its_linear_start():
    w = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    a, b = kmeans(w, 3), kmeans(w.clone(), 3)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.centroids, b.centroids)
    assert torch.all(a.centroids[1:] >= a.centroids[:-1])
    assert (a.reconstruct() - w).abs().max() < (w.max() - w.min()) / 8
    with pytest.raises(ValueError, match="bits"):
        kmeans(w, 0)


def test_centroid_gradient_sums_the_gradients_of_its_weights():
    idx = torch.tensor([[0, 1], [1, 2]])
    grad = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert centroid_grad(grad, idx, 4).tolist() == [1.0, 5.0, 4.0, 0.0]


def test_weight_sharing_keeps_k_values_while_the_loss_falls():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    x, y = torch.randn(256, 8), torch.randn(256, 1)
    sharing = WeightSharing(model, 2, ["0", "2"])
    losses = []
    for _ in range(30):
        model.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        sharing.step(lr=0.01)
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for name in ("0", "2"):
        values = model.get_submodule(name).weight.unique()
        assert len(values) <= 4
        assert torch.equal(model.get_submodule(name).weight, sharing.books[name].reconstruct())


def test_deep_compression_counts_every_stored_byte():
    w = torch.randn(64, 32, 3, 3, generator=torch.Generator().manual_seed(0))
    c = compress(w, 0.9, 4)
    assert int(c.mask.sum()) == round(0.1 * w.numel())
    assert c.book.indices.numel() == int(c.mask.sum())
    huff = stored_size(c.book.indices.tolist(), 16)
    expected_bits = w.numel() + huff.payload_bits + huff.table_bits + 16 * 32
    assert c.stored_bytes() == -(-expected_bits // 8)
    # never more than the bitmask of 4-bit indices that Huffman improves on
    pruned = w * c.mask
    assert c.stored_bytes() * 8 <= shared_weight_bits(pruned, 4, "bitmask") + huff.table_bits
    assert c.stored_bytes() < tensor_bits(w, 32) / 8 / 20  # a compression of over 20x
    back = c.reconstruct()
    assert torch.equal(back[~c.mask], torch.zeros(int((~c.mask).sum())))
    spread = float(w[c.mask].max() - w[c.mask].min())
    assert (back[c.mask] - w[c.mask]).abs().max() < spread / 8  # 16 values, a gap at 0
