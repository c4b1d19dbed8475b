"""Deep Compression end to end: prune, share weights by k-means, Huffman-code the indices.

Han, Mao and Dally, ICLR 2016 (https://arxiv.org/abs/1510.00149). The size
counts every byte a device would store: the positions of the kept weights (one
bit each, a bitmask), the Huffman-coded indices with their table of code lengths,
and the codebook of 32-bit centroids; nothing is counted twice.
"""

import math
from dataclasses import dataclass

import torch

from efflib.graded import reference
from efflib.prune import magnitude_mask
from efflib.quant.huffman import HuffmanSize, stored_size
from efflib.quant.kmeans import Codebook, kmeans


@dataclass
class Compressed:
    """One weight tensor after the three stages."""

    shape: tuple[int, ...]
    mask: torch.Tensor          # bool, the kept weights
    book: Codebook              # k-means of the kept weights only
    huffman: HuffmanSize        # the kept weights' indices, Huffman-coded

    def reconstruct(self) -> torch.Tensor:
        w = torch.zeros(self.shape, device=self.mask.device)
        w[self.mask] = self.book.reconstruct()
        return w

    def stored_bytes(self) -> int:
        positions = self.mask.numel()                      # a bitmask
        codebook = self.book.centroids.numel() * 32
        return math.ceil((positions + self.huffman.payload_bits + self.huffman.table_bits
                          + codebook) / 8)


@reference("deep_compression")
def compress(w: torch.Tensor, sparsity: float, bits: int, *,
             refill_empty: bool = True) -> Compressed:
    """Prune `w` to `sparsity` by magnitude, cluster what is left into 2^bits shared
    values (efflib.quant.kmeans, `refill_empty` passed on), and Huffman-code their
    indices."""
    mask = magnitude_mask(w.detach(), sparsity)
    if not bool(mask.any()):
        raise ValueError(f"compress: sparsity {sparsity} keeps none of the {w.numel()} weights, "
                         "so nothing is left to share; use a lower sparsity")
    kept = w.detach()[mask]
    book = kmeans(kept, bits, refill_empty=refill_empty)
    return Compressed(tuple(w.shape), mask, book,
                      stored_size(book.indices.tolist(), 2**bits))
