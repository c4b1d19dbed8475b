"""efflib.quant.huffman: optimal, prefix-free, decodable, and honestly sized."""

import math
from collections import Counter

import pytest
import torch

from efflib.quant.huffman import (
    average_bits,
    canonical_code,
    code_lengths,
    decode,
    encode,
    entropy,
    stored_size,
)


def test_a_textbook_example():
    counts = {0: 45, 1: 13, 2: 12, 3: 16, 4: 9, 5: 5}  # CLRS's example
    lengths = code_lengths(counts)
    assert lengths == {0: 1, 1: 3, 2: 3, 3: 3, 4: 4, 5: 4}
    assert sum(c * lengths[s] for s, c in counts.items()) == 224


@pytest.mark.parametrize("seed", range(5))
def test_codes_are_prefix_free_round_trip_and_lie_within_a_bit_of_entropy(seed):
    g = torch.Generator().manual_seed(seed)
    symbols = torch.multinomial(torch.rand(16, generator=g) ** 3, 5000, True, generator=g)
    symbols = symbols.tolist()
    counts = Counter(symbols)
    code = canonical_code(code_lengths(counts))
    words = sorted(code.values())
    assert not any(b.startswith(a) for a, b in zip(words, words[1:], strict=False))
    assert decode(encode(symbols, code), code) == symbols
    h, avg = entropy(counts), average_bits(counts, code)
    assert h <= avg < h + 1
    assert sum(2.0 ** -len(c) for c in code.values()) <= 1  # Kraft


def test_edge_cases_and_errors():
    assert code_lengths({7: 10}) == {7: 1}
    assert code_lengths({}) == {}
    code = canonical_code({1: 1, 2: 1})
    with pytest.raises(ValueError, match="ends inside"):
        decode("000", {1: "00", 2: "01"})
    assert decode("0", code) in ([1], [2])


def test_stored_size_counts_payload_and_table():
    symbols = [0] * 90 + [1] * 5 + [2] * 5
    size = stored_size(symbols, alphabet=4)
    assert size.payload_bits == 90 * 1 + 10 * 2
    assert size.table_bits == 4 * math.ceil(math.log2(3)) + 5
    assert size.total_bytes == math.ceil((size.payload_bits + size.table_bits) / 8)
    with pytest.raises(ValueError, match="symbols must lie"):
        stored_size([5], alphabet=4)


@pytest.mark.parametrize("counts", [{1: -3, 2: 4}, {1: 2.5, 2: 1}, {1: True}])
def test_a_count_that_is_not_a_non_negative_int_is_named(counts):
    """A negative count used to be dropped silently, as if the symbol never occurred."""
    with pytest.raises(ValueError, match="code_lengths: counts must be non-negative ints"):
        code_lengths(counts)
