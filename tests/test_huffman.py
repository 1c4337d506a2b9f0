"""Huffman coding (compresskit.coding): hand-checked codes, round trips, the entropy bound
H <= L < H + 1, and optimality against an independent brute-force search over all code-length
vectors that satisfy Kraft's inequality (never against Huffman's own construction)."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from compresskit import coding


def kraft(code: dict) -> float:
    return sum(2.0 ** -len(bits) for bits in code.values())


def is_prefix_free(code: dict) -> bool:
    words = list(code.values())
    return not any(a != b and b.startswith(a) for a in words for b in words) and len(set(words)) == len(words)


# --- hand-computed cases ----------------------------------------------------------------------


def test_a_hand_computed_code():
    # merges: c+d (2), then b+(cd) (4), then a+(bcd) (9): lengths a 1, b 2, c 3, d 3; canonical codes in (length, symbol) order
    assert coding.huffman_code({"a": 5, "b": 2, "c": 1, "d": 1}) == {"a": "0", "b": "10", "c": "110", "d": "111"}


def test_canonical_codes_count_up_within_a_length_and_shift_between_lengths():
    code = coding.canonical_code({0: 2, 1: 2, 2: 3, 3: 3, 4: 3, 5: 3})
    assert code == {0: "00", 1: "01", 2: "100", 3: "101", 4: "110", 5: "111"}


def test_ties_are_broken_by_symbol_so_the_order_of_the_counts_does_not_matter():
    counts = {3: 1, 1: 1, 2: 1, 0: 1, 4: 2}
    reordered = dict(reversed(list(counts.items())))
    assert coding.huffman_code(counts) == coding.huffman_code(reordered)
    assert coding.huffman_code({"x": 1, "y": 1}) == {"x": "0", "y": "1"}


def test_one_symbol_gets_a_one_bit_code_and_round_trips():
    code = coding.huffman_code({7: 12})
    assert code == {7: "0"}
    data = coding.encode([7] * 12, code)
    assert len(data) == 2 and coding.bit_length([7] * 12, code) == 12
    assert coding.decode(data, code, 12) == [7] * 12


@pytest.mark.parametrize("counts", [{}, {"a": 0, "b": 0}])
def test_no_symbol_to_code_is_refused(counts):
    with pytest.raises(ValueError, match="at least one symbol with a positive count"):
        coding.huffman_code(counts)


def test_zero_counts_get_no_code():
    assert coding.huffman_code({"a": 3, "b": 0, "c": 1}) == {"a": "0", "c": "1"}


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: coding.huffman_code([1, 2, 3]), TypeError, "`counts` must be a mapping"),
        (lambda: coding.huffman_code({"a": -1}), ValueError, "`counts['a']`"),
        (lambda: coding.huffman_code({"a": 1.5}), TypeError, "`counts['a']` must be an integer"),
        (lambda: coding.huffman_code({1: 1, "a": 1}), TypeError, "sortable"),
        (lambda: coding.canonical_code({"a": 1, "b": 1, "c": 1}), ValueError, "Kraft"),
        (lambda: coding.encode([1], {1: "0", 2: "01"}), ValueError, "prefix code"),
        (lambda: coding.encode([3], {1: "0", 2: "1"}), ValueError, "got 3"),
        (lambda: coding.encode([1], {1: "2"}), ValueError, "0s and 1s"),
        (lambda: coding.decode("01", {1: "0"}, 1), TypeError, "`data` must be bytes"),
        (lambda: coding.decode(b"\x00", {1: "0"}, -1), ValueError, "`count`"),
        (lambda: coding.mean_code_length({1: "0"}, {1: 3, 2: 1}), ValueError, "missing 2"),
    ],
)
def test_bad_input_is_refused(call, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        call()


# --- decoding checks the stream ---------------------------------------------------------------

CODE = {"a": "0", "b": "10", "c": "11"}


def test_decode_refuses_a_stream_that_ends_inside_a_code():
    data = coding.encode(list("bcb"), CODE)  # 101110 + 00 padding
    with pytest.raises(ValueError, match="ends inside a code"):
        coding.decode(data[:0] + bytes([0b10111011]), CODE, 5)


def test_decode_refuses_an_extra_byte_and_set_padding_bits():
    data = coding.encode(list("bcb"), CODE)
    assert coding.decode(data, CODE, 3) == list("bcb")
    with pytest.raises(ValueError, match="zero padding"):
        coding.decode(data + b"\x00", CODE, 3)
    with pytest.raises(ValueError, match="zero padding"):
        coding.decode(bytes([data[0] | 1]), CODE, 3)


def test_decode_refuses_bits_that_start_no_code():
    with pytest.raises(ValueError, match="start no code"):
        coding.decode(b"\x80", {"a": "0"}, 1)


# --- properties ---------------------------------------------------------------------------------

symbol_lists = st.lists(st.integers(0, 20), min_size=1, max_size=300)


@given(symbol_lists)
@settings(max_examples=100, deadline=None)
def test_round_trip_with_exact_bit_counts(symbols):
    counts = coding.count_symbols(symbols)
    code = coding.huffman_code(counts)
    data = coding.encode(symbols, code)
    bits = coding.bit_length(symbols, code)
    assert bits == sum(len(code[s]) for s in symbols)
    assert len(data) == math.ceil(bits / 8)
    assert coding.decode(data, code, len(symbols)) == symbols
    assert is_prefix_free(code)
    assert kraft(code) == (1.0 if len(counts) > 1 else 0.5)  # Huffman's tree is full


@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=40))
@settings(max_examples=150, deadline=None)
def test_mean_length_is_within_one_bit_of_the_entropy(values):
    counts = dict(enumerate(values))
    code = coding.huffman_code(counts)
    H, L = coding.entropy(counts), coding.mean_code_length(code, counts)
    assert H <= L + 1e-12
    assert L < H + 1 or len(counts) == 1  # one symbol: H = 0 and L = 1 (a 0-bit code cannot count symbols)


def test_entropy_agrees_with_scipy():
    rng = np.random.default_rng(0)
    for _ in range(50):
        counts = rng.integers(1, 1000, size=rng.integers(1, 30))
        ours = coding.entropy(dict(enumerate(counts.tolist())))
        assert ours == pytest.approx(scipy.stats.entropy(counts, base=2), abs=1e-12)


# --- optimality against brute force -------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def kraft_length_vectors(n: int) -> np.ndarray:
    """Every integer length vector with lengths in [1, n - 1] (an optimal code for n >= 2
    symbols never needs longer) that satisfies Kraft's inequality sum 2^-l <= 1, which is
    exactly when a prefix code with those lengths exists."""
    lengths = np.array(list(itertools.product(range(1, n), repeat=n)), dtype=np.int64)  # ((n-1)^n, n)
    return lengths[np.exp2(-lengths.astype(float)).sum(axis=1) <= 1.0]


def brute_force_best_total(counts: list[int]) -> int:
    """Fewest total bits of any prefix code for these counts, by trying every feasible length vector."""
    return int((kraft_length_vectors(len(counts)) @ np.array(counts, dtype=np.int64)).min())


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7])
def test_huffman_is_optimal_against_a_brute_force_search(n):
    rng = np.random.default_rng(n)
    for trial in range(12):
        high = 5 if trial % 3 == 0 else 1000  # small counts make many ties
        counts = rng.integers(1, high, size=n).tolist()
        code = coding.huffman_code(dict(enumerate(counts)))
        ours = sum(c * len(code[s]) for s, c in enumerate(counts))
        assert ours == brute_force_best_total(counts), f"counts {counts}: Huffman {ours} bits"


def test_the_brute_force_search_is_not_trivially_agreeing():
    # a non-optimal but valid code (fixed 2 bits for 3 symbols) costs more than the search finds
    counts = [10, 1, 1]
    assert brute_force_best_total(counts) == 10 * 1 + 1 * 2 + 1 * 2 < 2 * sum(counts)


def test_count_symbols_counts_a_tensor_or_an_array_by_value():
    import torch

    assert coding.count_symbols(torch.tensor([1, 1, 2])) == {1: 2, 2: 1}
    assert coding.count_symbols(torch.tensor([[0.5, 0.5], [0.25, 0.5]])) == {0.5: 3, 0.25: 1}
    assert coding.count_symbols(np.array([3, 3, 3], dtype=np.int8)) == {3: 3}
    assert coding.code_lengths(coding.count_symbols(torch.tensor([7, 7, 7, 1, 2]))) == {7: 1, 1: 2, 2: 2}


@pytest.mark.parametrize("symbols, error, words", [
    (np.array([1.0, np.nan]), ValueError, ["`symbols`", "NaN"]),
    ([np.int64(1), np.array([1, 2])], TypeError, ["`symbols[1]`", "array"]),
    (5, TypeError, ["`symbols`", "int"]),
    ({"a": 1}, TypeError, ["`symbols`", "dict"]),
])
def test_count_symbols_refuses_what_it_cannot_count(symbols, error, words):
    with pytest.raises(error) as info:
        coding.count_symbols(symbols)
    assert all(w in str(info.value) for w in words), str(info.value)
