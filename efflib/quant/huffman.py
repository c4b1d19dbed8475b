"""Huffman coding of an index stream: frequent symbols get short codes.

Huffman, A Method for the Construction of Minimum-Redundancy Codes, 1952; used on
the k-means indices in Deep Compression (https://arxiv.org/abs/1510.00149). The
code is canonical (Schwartz and Kallick, 1964): only each symbol's code length
needs storing, and the codes follow from the lengths, so the stored size counts
the lengths table, not a tree.
"""

import heapq
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from efflib.graded import reference


@reference("huffman")
def code_lengths(counts: dict[int, int]) -> dict[int, int]:
    """Code length of each symbol with a nonzero count (a lone symbol gets 1 bit).

    Ties are broken by insertion order, so equal inputs give equal codes.
    """
    bad = {s: c for s, c in counts.items()
           if isinstance(c, bool) or not isinstance(c, int) or c < 0}
    if bad:
        raise ValueError(f"code_lengths: counts must be non-negative ints; symbol "
                         f"{next(iter(bad))!r} has {next(iter(bad.values()))!r}")
    symbols = [s for s, c in counts.items() if c > 0]
    if not symbols:
        return {}
    if len(symbols) == 1:
        return {symbols[0]: 1}
    heap = [(counts[s], i, [s]) for i, s in enumerate(symbols)]
    heapq.heapify(heap)
    depth = dict.fromkeys(symbols, 0)
    order = len(heap)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            depth[s] += 1
        heapq.heappush(heap, (c1 + c2, order, s1 + s2))
        order += 1
    return depth


def canonical_code(lengths: dict[int, int]) -> dict[int, str]:
    """The canonical prefix-free code for these lengths: shorter codes first, then by symbol."""
    code, value, previous = {}, 0, 0
    for symbol, length in sorted(lengths.items(), key=lambda kv: (kv[1], kv[0])):
        value <<= length - previous
        code[symbol] = format(value, f"0{length}b")
        value += 1
        previous = length
    return code


def encode(symbols: Iterable[int], code: dict[int, str]) -> str:
    return "".join(code[s] for s in symbols)


def decode(bits: str, code: dict[int, str]) -> list[int]:
    """The symbols of a bit string (a prefix-free code reads greedily)."""
    lookup = {c: s for s, c in code.items()}
    out, word = [], ""
    for b in bits:
        word += b
        if word in lookup:
            out.append(lookup[word])
            word = ""
    if word:
        raise ValueError(f"the bit string ends inside a code word ({word!r})")
    return out


def entropy(counts: dict[int, int]) -> float:
    """Shannon entropy in bits per symbol: no prefix code averages fewer bits."""
    n = sum(counts.values())
    return -sum(c / n * math.log2(c / n) for c in counts.values() if c)


def average_bits(counts: dict[int, int], code: dict[int, str]) -> float:
    n = sum(counts.values())
    return sum(c * len(code[s]) for s, c in counts.items() if c) / n


@dataclass
class HuffmanSize:
    """Bits stored for a Huffman-coded stream: the payload and the table of code lengths."""

    payload_bits: int
    table_bits: int

    @property
    def total_bytes(self) -> int:
        return math.ceil((self.payload_bits + self.table_bits) / 8)


def stored_size(symbols: Sequence[int], alphabet: int) -> HuffmanSize:
    """Size of `symbols` (values in [0, alphabet)) Huffman-coded, table included.

    The table stores one code length per symbol of the alphabet (0 for unused) in
    ceil(log2(longest + 1)) bits each, plus 5 bits for that width.
    """
    counts = Counter(int(s) for s in symbols)
    if any(not 0 <= s < alphabet for s in counts):
        raise ValueError(f"symbols must lie in [0, {alphabet})")
    code = canonical_code(code_lengths(counts))
    payload = sum(c * len(code[s]) for s, c in counts.items())
    longest = max((len(c) for c in code.values()), default=0)
    width = max(1, math.ceil(math.log2(longest + 1)))
    return HuffmanSize(payload, alphabet * width + 5)
