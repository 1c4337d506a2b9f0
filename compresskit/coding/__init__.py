"""Coding: lossless entropy coding of the symbols a compressed model stores (chapter 8).

* :mod:`compresskit.coding.huffman`: canonical Huffman codes (Huffman 1952), ``encode`` /
  ``decode`` with exact bit counts, ``entropy`` and ``mean_code_length`` (H <= L < H + 1).

Deep Compression (Han, Mao, Dally 2016, arXiv:1510.00149) Huffman-codes the cluster indices and
the relative-index gaps of a pruned, weight-shared network; ``compresskit.training`` writes them
to a file.
"""

from compresskit.coding.huffman import (
    bit_length,
    canonical_code,
    code_lengths,
    count_symbols,
    decode,
    encode,
    entropy,
    huffman_code,
    mean_code_length,
)

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
