"""N:M structured sparsity (2:4): at most N non-zeros in every group of M consecutive weights.

References
----------
[1] A. Mishra, J. A. Latorre, J. Pool, D. Stosic, D. Stosic, G. Venkatesh, C. Yu,
    P. Micikevicius, "Accelerating Sparse Deep Neural Networks", 2021, arXiv:2104.08378.
[2] A. Zhou, Y. Ma, J. Zhu, J. Liu, Z. Zhang, K. Yuan, W. Sun, H. Li, "Learning N:M
    Fine-grained Structured Sparse Neural Networks From Scratch", ICLR 2021, arXiv:2102.04010.

Key equations
-------------
Split each row of the weight (a Linear weight's input dimension; a Conv weight flattened to
``(out, in * kh * kw)``) into groups of ``m`` consecutive entries; keep the ``n`` of largest
magnitude in each group [1]:
``mask_g = 1[|w_i| among the n largest of group g]``.                               Eq. (1)

Storage [1]: the ``n`` kept values of each group, plus for each the position inside its group,
``ceil(log2 m)`` bits (2 bits for 2:4). For ``numel`` weights:
``bytes = numel * n / m * v + ceil(numel * n / m * ceil(log2 m) / 8)``,            Eq. (2)
2.125 bytes per weight for 2:4 float32 (0.53x dense) and 1.125 for 2:4 float16 (0.56x).

NVIDIA's sparse tensor cores multiply a 2:4 matrix in half the time of a dense one [1];
PyTorch exposes them as ``torch.sparse.to_sparse_semi_structured``, which needs a CUDA GPU.
On a CPU there is no such kernel: a 2:4 model is a dense model with zeros, and its benefit
there is the storage of Eq. (2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from compresskit._validation import check_int, check_tensor
from compresskit.sparsity.formats import pack_bits, unpack_bits


@dataclass(frozen=True)
class NMPacked:
    """A weight in N:M storage: ``values`` (rows, cols * n / m) and the packed in-group
    positions ``indices`` (``ceil(log2 m)`` bits each, first in the lowest bits)."""

    shape: tuple[int, ...]
    values: torch.Tensor
    indices: torch.Tensor
    n: int
    m: int


def _check_nm(n: object, m: object) -> tuple[int, int]:
    m = check_int("m", m, 1)
    n = check_int("n", n, 1)
    if n > m:
        raise ValueError(f"`n` must be at most `m` = {m} (keep n of every m weights); got n = {n}")
    return n, m


def _rows(weight: torch.Tensor, m: int) -> torch.Tensor:
    rows = weight.detach().reshape(weight.shape[0], -1)
    if rows.shape[1] % m:
        raise ValueError(f"`m` must divide the row length {rows.shape[1]} of `weight` {tuple(weight.shape)}; got m = {m}")
    return rows


def nm_mask(weight: torch.Tensor, n: int = 2, m: int = 4) -> torch.Tensor:
    """0/1 mask of ``weight``'s shape keeping the ``n`` largest ``|w|`` of every ``m`` along each row."""
    check_tensor("weight", weight, ndim=(2, 3, 4), floating=True, finite=True)
    n, m = _check_nm(n, m)
    groups = _rows(weight, m).abs().reshape(-1, m)  # (numel / m, m)
    keep = torch.topk(groups, n, dim=1, sorted=False).indices
    mask = torch.zeros_like(groups).scatter_(1, keep, 1.0)  # Eq. (1) in [1]
    return mask.reshape(weight.shape).to(weight.dtype)


def is_nm_sparse(weight: torch.Tensor, n: int = 2, m: int = 4) -> bool:
    """True when every group of ``m`` along each row holds at most ``n`` non-zeros."""
    check_tensor("weight", weight, ndim=(2, 3, 4), floating=True, finite=True)
    n, m = _check_nm(n, m)
    return bool(((_rows(weight, m).reshape(-1, m) != 0).sum(dim=1) <= n).all())


def index_bits(m: int) -> int:
    """Bits for a position inside a group of ``m``: ``ceil(log2 m)``, rounded up to 1, 2, 4 or 8
    so that codes pack into whole bytes (2 for 2:4)."""
    m = check_int("m", m, 2, 256)
    need = max(1, math.ceil(math.log2(m)))
    return next(b for b in (1, 2, 4, 8) if b >= need)


def pack_nm(weight: torch.Tensor, n: int = 2, m: int = 4) -> NMPacked:
    """N:M storage of ``weight * nm_mask(weight, n, m)``: the kept values and their 2-bit (for m=4)
    positions. Exact: :func:`unpack_nm` returns ``weight`` itself when it already is N:M sparse."""
    mask = nm_mask(weight, n, m)
    groups = (weight.detach() * mask).reshape(-1, m)
    keep = mask.reshape(-1, m).nonzero()[:, 1].reshape(-1, n)  # positions, increasing in each group
    values = groups.gather(1, keep).reshape(weight.shape[0], -1)
    return NMPacked(tuple(weight.shape), values.clone(), pack_bits(keep.flatten(), index_bits(m)), n, m)


def unpack_nm(packed: NMPacked) -> torch.Tensor:
    """The dense weight. Refuses positions out of the group, repeated or not increasing, and
    arrays whose lengths do not match the shape."""
    if not isinstance(packed, NMPacked):
        raise TypeError(f"`packed` must be an NMPacked; got {type(packed).__name__}")
    n, m = _check_nm(packed.n, packed.m)
    shape = packed.shape
    if (not isinstance(shape, (tuple, list, torch.Size)) or len(shape) not in (2, 3, 4)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
        raise ValueError(f"`packed.shape` must be 2 to 4 positive ints (the weight's shape); got {shape!r}")
    numel = math.prod(packed.shape)
    if numel % m or packed.shape[0] == 0:
        raise ValueError(f"`shape` {packed.shape} must have a row length divisible by m = {m}")
    check_tensor("packed.values", packed.values, nonempty=False, finite=True)
    check_tensor("packed.indices", packed.indices, ndim=1, nonempty=False)
    if packed.indices.dtype != torch.uint8 or packed.indices.numel() != math.ceil(numel // m * n * index_bits(m) / 8):
        raise ValueError(f"`packed.indices` must be {math.ceil(numel // m * n * index_bits(m) / 8)} uint8 bytes "
                         f"({numel // m * n} positions of {index_bits(m)} bits); got {packed.indices.numel()} of {packed.indices.dtype}")
    if packed.values.numel() != numel // m * n:
        raise ValueError(f"`values` must hold {numel // m * n} entries (n = {n} per group of m = {m}); got {packed.values.numel()}")
    keep = unpack_bits(packed.indices, index_bits(m), numel // m * n).reshape(-1, n)
    if bool((keep >= m).any()):
        raise ValueError(f"`indices` must hold positions in [0, {m - 1}]; got {int(keep.max())}")
    if n > 1 and bool((keep[:, 1:] <= keep[:, :-1]).any()):
        g = int((keep[:, 1:] <= keep[:, :-1]).any(dim=1).nonzero()[0])
        raise ValueError(f"`indices` must be strictly increasing within each group; group {g} has {keep[g].tolist()}")
    dense = torch.zeros(numel // m, m, dtype=packed.values.dtype)
    dense.scatter_(1, keep, packed.values.reshape(-1, n))
    return dense.reshape(packed.shape)


def nm_bytes(numel: int, n: int = 2, m: int = 4, value_bytes: int = 4) -> int:
    """Eq. (2): bytes of ``numel`` weights in N:M storage."""
    numel = check_int("numel", numel, 1)
    n, m = _check_nm(n, m)
    if numel % m:
        raise ValueError(f"`m` must divide `numel` = {numel}; got m = {m}")
    v = check_int("value_bytes", value_bytes, 1)
    kept = numel // m * n
    return kept * v + math.ceil(kept * index_bits(m) / 8)  # Eq. (2)


def packed_bytes(packed: NMPacked) -> int:
    """Bytes of the arrays ``packed`` stores."""
    if not isinstance(packed, NMPacked):
        raise TypeError(f"`packed` must be an NMPacked; got {type(packed).__name__}")
    return packed.values.numel() * packed.values.element_size() + packed.indices.numel()
