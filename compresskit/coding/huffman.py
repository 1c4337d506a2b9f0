"""Huffman coding: the shortest prefix code for known symbol counts, in canonical form.

A prefix code gives each symbol a bit string, none the start of another, so a stream of codes
decodes without separators. Huffman [1] builds the optimal one (fewest total bits for the
given counts ``n_s``) by merging the two least frequent subtrees until one tree is left; a
symbol's code length ``l_s`` is its depth. Every prefix code satisfies Kraft's inequality

    sum_s 2^(-l_s) <= 1                                                     # Eq. (1)

and with ``p_s = n_s / N`` the mean code length ``L = sum_s p_s l_s`` of Huffman's code lies
within one bit of the entropy ``H = -sum_s p_s log2 p_s`` [2]:

    H <= L < H + 1                                                          # Eq. (2)

*Canonical* codes [3] keep only the lengths from Huffman's tree and hand out codes in order of
(length, symbol): the first code is all zeros, and each next code is the previous one plus one,
shifted left when the length grows

    code_{i+1} = (code_i + 1) << (l_{i+1} - l_i)                            # Eq. (3)

so a file needs to store only the lengths (a few bytes), not the tree. Deep Compression [4]
Huffman-codes the cluster indices and the relative-index gaps of a pruned, weight-shared layer.

Ties between equal counts are broken by symbol order, so the same counts always give the same
code. One symbol alone gets the 1-bit code ``"0"`` (a 0-bit code could not say how many symbols
a stream holds). Symbols with a zero count get no code.

References
----------
[1] D. A. Huffman, "A Method for the Construction of Minimum-Redundancy Codes",
    Proceedings of the IRE 40(9), 1952.
[2] T. M. Cover, J. A. Thomas, "Elements of Information Theory", 2nd ed., Wiley 2006,
    sections 5.2-5.8 (Kraft's inequality, the bound H <= L < H + 1, Huffman's optimality).
[3] E. S. Schwartz, B. Kallick, "Generating a canonical prefix encoding",
    Communications of the ACM 7(3), 1964.
[4] S. Han, H. Mao, W. J. Dally, "Deep Compression: Compressing Deep Neural Networks with
    Pruning, Trained Quantization and Huffman Coding", ICLR 2016, arXiv:1510.00149.
"""

from __future__ import annotations

import heapq
import math
import numbers
from collections import Counter
from typing import Hashable, Iterable, Mapping, Sequence

import numpy as np
import torch

from compresskit._validation import _show, check_int

__all__ = [
    "bit_length",
    "canonical_code",
    "code_lengths",
    "count_symbols",
    "decode",
    "encode",
    "entropy",
    "huffman_code",
    "mean_code_length",
]

Symbol = Hashable


def _check_counts(counts: object) -> dict[Symbol, int]:
    """A mapping symbol -> non-negative int count with at least one positive count; zeros dropped."""
    if not isinstance(counts, Mapping):
        raise TypeError(f"`counts` must be a mapping from symbol to count (a dict or Counter); got {type(counts).__name__} {_show(counts)}")
    for symbol, n in counts.items():
        check_int(f"counts[{symbol!r}]", n, 0)
    positive = {s: int(n) for s, n in counts.items() if n > 0}
    if not positive:
        raise ValueError(f"`counts` must hold at least one symbol with a positive count; got {_show(dict(counts))}")
    try:
        sorted(positive)
    except TypeError as exc:
        raise TypeError(f"`counts` must have symbols of one sortable kind (ints, or strs); got {sorted(map(repr, positive))[:5]}") from exc
    return positive


def count_symbols(symbols: Iterable[Symbol]) -> dict[Symbol, int]:
    """How often each symbol occurs: the ``counts`` that :func:`huffman_code` takes.

    A tensor or a numpy array is counted by value (its elements as Python numbers, so
    ``tensor([1, 1, 2])`` gives ``{1: 2, 2: 1}``); NaN, which equals nothing, is refused.
    """
    values = _symbol_list(symbols)
    for i, v in enumerate(values):
        if isinstance(v, (torch.Tensor, np.ndarray)):
            raise TypeError(f"`symbols[{i}]` must be a hashable symbol (a number or a str); got {_show(v)}: pass the tensor itself to count by value")
        if isinstance(v, float) and math.isnan(v):
            raise ValueError(f"`symbols` must not hold NaN (it equals no other value, so it cannot be counted); got NaN at index {i}")
    try:
        return dict(Counter(values))
    except TypeError as exc:
        raise TypeError(f"`symbols` must hold hashable symbols; got {exc}") from None


def _symbol_list(symbols: object) -> list[Symbol]:
    """The symbols as a list; a tensor or a numpy array by value (its elements as Python numbers)."""
    if isinstance(symbols, (torch.Tensor, np.ndarray)):
        if isinstance(symbols, np.ndarray) and symbols.dtype == object:
            raise TypeError(f"`symbols` must be an array of numbers; got {_show(symbols)}")
        return symbols.reshape(-1).tolist()
    if isinstance(symbols, Iterable) and not isinstance(symbols, Mapping):
        return list(symbols)
    raise TypeError(f"`symbols` must be an iterable of symbols (a list, a tensor, a str); got {type(symbols).__name__} {_show(symbols)}")


def code_lengths(counts: Mapping[Symbol, int]) -> dict[Symbol, int]:
    """Huffman's code length of every symbol with a positive count (the depth in Huffman's tree).

    The two subtrees of smallest total count merge first; among equal totals the subtree
    holding the smaller symbol merges first, which makes the lengths deterministic.
    """
    positive = _check_counts(counts)
    if len(positive) == 1:
        return {next(iter(positive)): 1}  # one symbol still needs one bit per occurrence
    order = sorted(positive)
    # heap entries: (total count, smallest symbol rank in the subtree, symbols in the subtree)
    heap = [(positive[s], rank, [s]) for rank, s in enumerate(order)]
    heapq.heapify(heap)
    depth = dict.fromkeys(order, 0)
    while len(heap) > 1:
        n1, r1, left = heapq.heappop(heap)
        n2, r2, right = heapq.heappop(heap)
        for s in left + right:  # every symbol below the new node moves one level down
            depth[s] += 1
        heapq.heappush(heap, (n1 + n2, min(r1, r2), left + right))  # Huffman's merge [1]
    return depth


def canonical_code(lengths: Mapping[Symbol, int]) -> dict[Symbol, str]:
    """The canonical prefix code with these code lengths (Eq. 3); refuses lengths that break Kraft's inequality."""
    if not isinstance(lengths, Mapping) or not lengths:
        raise ValueError(f"`lengths` must be a non-empty mapping from symbol to code length; got {_show(lengths)}")
    for symbol, n in lengths.items():
        check_int(f"lengths[{symbol!r}]", n, 1, 64)
    kraft = sum(2.0 ** -n for n in lengths.values())
    if kraft > 1:  # Eq. (1): no prefix code has these lengths
        raise ValueError(f"`lengths` must satisfy Kraft's inequality sum 2^-l <= 1; got {kraft:g} for {_show(dict(lengths))}")
    code: dict[Symbol, str] = {}
    value, previous = 0, 0
    for symbol in sorted(lengths, key=lambda s: (lengths[s], s)):
        n = lengths[symbol]
        value <<= n - previous  # Eq. (3): longer codes continue from the shorter ones, shifted
        code[symbol] = format(value, f"0{n}b")
        value, previous = value + 1, n
    return code


def huffman_code(counts: Mapping[Symbol, int]) -> dict[Symbol, str]:
    """The canonical Huffman code for ``counts`` (symbol -> count): symbol -> bit string such as ``"101"``.

    >>> huffman_code({"a": 5, "b": 2, "c": 1, "d": 1})
    {'a': '0', 'b': '10', 'c': '110', 'd': '111'}
    """
    return canonical_code(code_lengths(counts))


def entropy(counts: Mapping[Symbol, int]) -> float:
    """Shannon entropy ``H = -sum p log2 p`` of the distribution ``p_s = n_s / N``, in bits per symbol."""
    positive = _check_counts(counts)
    total = sum(positive.values())
    return -sum(n / total * math.log2(n / total) for n in positive.values())


def mean_code_length(code: Mapping[Symbol, str], counts: Mapping[Symbol, int]) -> float:
    """``L = sum_s p_s l_s``: bits per symbol of ``code`` on symbols drawn with ``counts`` (Eq. 2)."""
    code = _check_code(code)
    positive = _check_counts(counts)
    missing = sorted(map(repr, set(positive) - set(code)))
    if missing:
        raise ValueError(f"`code` must have a code for every counted symbol; missing {', '.join(missing[:5])}")
    total = sum(positive.values())
    return sum(n * len(code[s]) for s, n in positive.items()) / total


def _check_code(code: object) -> dict[Symbol, str]:
    """A non-empty mapping symbol -> non-empty string of 0/1 that is a prefix code."""
    if not isinstance(code, Mapping) or not code:
        raise ValueError(f"`code` must be a non-empty mapping from symbol to a bit string; got {_show(code)}")
    for symbol, bits in code.items():
        if not isinstance(bits, str) or not bits or set(bits) - {"0", "1"}:
            raise ValueError(f"`code[{symbol!r}]` must be a non-empty string of 0s and 1s; got {bits!r}")
    words = sorted(code.values())
    for a, b in zip(words, words[1:]):  # in sorted order a prefix sits right before its extensions
        if b.startswith(a):
            raise ValueError(f"`code` must be a prefix code; {a!r} is a prefix of {b!r}")
    return dict(code)


def bit_length(symbols: Sequence[Symbol], code: Mapping[Symbol, str]) -> int:
    """Exact number of bits :func:`encode` writes for ``symbols`` (before padding to whole bytes)."""
    code = _check_code(code)
    symbols = _symbol_list(symbols)
    try:
        return sum(len(code[s]) for s in symbols)
    except KeyError as exc:
        raise ValueError(f"`symbols` must hold only symbols that `code` has; got {exc.args[0]!r}") from None


def encode(symbols: Sequence[Symbol], code: Mapping[Symbol, str]) -> bytes:
    """The codes of ``symbols`` one after the other, most significant bit first, the last byte
    padded with zero bits: ``ceil(bit_length / 8)`` bytes."""
    code = _check_code(code)
    symbols = _symbol_list(symbols)
    try:
        bits = "".join(code[s] for s in symbols)
    except KeyError as exc:
        raise ValueError(f"`symbols` must hold only symbols that `code` has; got {exc.args[0]!r}") from None
    if not bits:
        return b""
    padded = bits + "0" * (-len(bits) % 8)
    return int(padded, 2).to_bytes(len(padded) // 8, "big")


def decode(data: bytes, code: Mapping[Symbol, str], count: int) -> list[Symbol]:
    """The ``count`` symbols that :func:`encode` wrote into ``data``.

    Refuses, with ``ValueError``, a stream that ends inside a code, bits that start no code,
    and anything but zero padding after the last symbol (a byte too many, or set bits).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"`data` must be bytes; got {type(data).__name__} {_show(data)}")
    code = _check_code(code)
    count = check_int("count", count, 0)
    lookup = {bits: s for s, bits in code.items()}
    longest = max(map(len, lookup))
    stream = "".join(format(byte, "08b") for byte in bytes(data))
    out: list[Symbol] = []
    pos = 0
    while len(out) < count:
        end = pos + 1
        while stream[pos:end] not in lookup:
            if end - pos >= longest or end >= len(stream):
                where = "the data ends inside a code" if end >= len(stream) else f"bits {stream[pos:end]!r} start no code"
                raise ValueError(f"`data` must hold {count} coded symbols; after {len(out)} symbols at bit {pos}, {where}")
            end += 1
        out.append(lookup[stream[pos:end]])
        pos = end
    rest = stream[pos:]
    if len(rest) >= 8 or "1" in rest:
        raise ValueError(f"`data` must end with at most 7 zero padding bits after {count} symbols; got {len(rest)} bits left: {rest[:16]!r}")
    return out
