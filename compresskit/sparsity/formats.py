"""Sparse storage formats from scratch, with their exact byte cost: COO, CSR, bitmask and
relative indices.

References
----------
[1] S. Han, H. Mao, W. J. Dally, "Deep Compression: Compressing Deep Neural Networks with
    Pruning, Trained Quantization and Huffman Coding", ICLR 2016, arXiv:1510.00149.
[2] S. Han, X. Liu, H. Mao, J. Pu, A. Pedram, M. Horowitz, W. J. Dally, "EIE: Efficient
    Inference Engine on Compressed Deep Neural Network", ISCA 2016, arXiv:1602.01528.
[3] Y. Saad, "Iterative Methods for Sparse Linear Systems", 2nd ed., SIAM 2003, section 3.4
    (the COO and CSR formats).

Byte cost
---------
A matrix of shape (R, C) with ``numel = R * C`` entries, ``nnz`` of them non-zero, values of
``v`` bytes and indices of ``i`` bytes:

* dense:    ``numel * v``                                                   Eq. (1)
* COO:      ``nnz * (2 i + v)``  (row, column and value of each non-zero)   Eq. (2)
* CSR:      ``(R + 1) i + nnz * (i + v)``  (row pointers, columns, values)  Eq. (3)
* bitmask:  ``ceil(numel / 8) + nnz * v``  (one bit per entry, then values) Eq. (4)
* relative: ``ceil(e * b / 8) + e * v`` with ``e = nnz + fillers``          Eq. (5)

Relative indices [1, 2] store, for each non-zero of the flattened matrix, the number of
zeros since the previous one in ``b`` bits (4 in [2]). A gap longer than ``2^b - 1`` needs a
"filler zero": an entry of value 0 that stands for position ``2^b - 1`` zeros further on. So
the cost depends on where the zeros are, not only on how many there are.

Every ``to_*`` builds the format from a dense 2-D tensor; every ``from_*`` rebuilds the dense
tensor exactly and first checks the arrays it is given (lengths, ranges, sorted order), so a
corrupt index array raises an error instead of decoding to a silently wrong matrix.
``nbytes(encoded)`` counts the bytes of the arrays actually stored; :func:`format_bytes` is the
formula, and the tests check that they agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from compresskit._validation import check_choice, check_int, check_tensor

FORMATS = ("dense", "coo", "csr", "bitmask", "relative")
INDEX_DTYPES = (torch.int16, torch.int32, torch.int64)


@dataclass(frozen=True)
class COO:
    """Coordinates: ``row[k], col[k], values[k]`` for every non-zero, in row-major order."""

    shape: tuple[int, int]
    row: torch.Tensor
    col: torch.Tensor
    values: torch.Tensor


@dataclass(frozen=True)
class CSR:
    """Compressed sparse rows: row ``r`` holds ``values[crow[r]:crow[r+1]]`` at columns
    ``col[crow[r]:crow[r+1]]`` (sorted). The same arrays as ``torch``'s ``to_sparse_csr`` and
    ``scipy.sparse.csr_matrix`` (``indptr``, ``indices``, ``data``)."""

    shape: tuple[int, int]
    crow_indices: torch.Tensor
    col_indices: torch.Tensor
    values: torch.Tensor


@dataclass(frozen=True)
class Bitmask:
    """One bit per entry (1 = non-zero, row-major, most significant bit first as
    ``numpy.packbits``), then the non-zero values in the same order."""

    shape: tuple[int, int]
    bits: torch.Tensor  # uint8, ceil(numel / 8)
    values: torch.Tensor


@dataclass(frozen=True)
class Relative:
    """Relative indices [1, 2]: ``gaps[k]`` zeros precede entry ``k`` (packed ``index_bits``
    bits each); ``values`` includes the filler zeros."""

    shape: tuple[int, int]
    gaps: torch.Tensor  # uint8, packed: ceil(len(values) * index_bits / 8)
    values: torch.Tensor
    index_bits: int


Encoded = COO | CSR | Bitmask | Relative


# --- bytes ------------------------------------------------------------------------------


def nbytes(encoded: Encoded) -> int:
    """Bytes of the arrays ``encoded`` stores (shape and ``index_bits`` are a few header bytes, not counted)."""
    if not isinstance(encoded, (COO, CSR, Bitmask, Relative)):
        raise TypeError(f"`encoded` must be a COO, CSR, Bitmask or Relative; got {type(encoded).__name__}")
    tensors = [getattr(encoded, f.name) for f in fields(encoded)]
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def format_bytes(
    fmt: str, shape: tuple[int, int], nnz: int, *, value_bytes: int = 4, index_bytes: int = 4,
    index_bits: int = 4, fillers: int = 0,
) -> int:
    """Bytes of a (R, C) matrix with ``nnz`` non-zeros stored as ``fmt``: Eqs. (1)-(5) above.

    ``fillers`` (the filler zeros) only counts for "relative", where it depends on the pattern.
    """
    check_choice("fmt", fmt, FORMATS)
    rows, cols = _check_shape(shape)
    numel = rows * cols
    nnz = check_int("nnz", nnz, 0, numel)
    v = check_int("value_bytes", value_bytes, 1)
    i = check_int("index_bytes", index_bytes, 1)
    b = check_int("index_bits", index_bits, 1, 16)
    fillers = check_int("fillers", fillers, 0)
    if fmt == "dense":
        return numel * v  # Eq. (1)
    if fmt == "coo":
        return nnz * (2 * i + v)  # Eq. (2)
    if fmt == "csr":
        return (rows + 1) * i + nnz * (i + v)  # Eq. (3)
    if fmt == "bitmask":
        return math.ceil(numel / 8) + nnz * v  # Eq. (4)
    entries = nnz + fillers
    return math.ceil(entries * b / 8) + entries * v  # Eq. (5)


def crossover_density(fmt: str, shape: tuple[int, int], *, value_bytes: int = 4, index_bytes: int = 4) -> float:
    """The largest density (``nnz / numel``) at which ``fmt`` takes fewer bytes than dense.

    Found from the formula by solving for ``nnz``, so it is exact for this shape; for large
    matrices it tends to ``v / (i + v)`` (CSR), ``v / (2i + v)`` (COO), ``1 - 1 / (8v)`` (bitmask).
    """
    check_choice("fmt", fmt, ("coo", "csr", "bitmask"))
    rows, cols = _check_shape(shape)
    numel = rows * cols
    dense = format_bytes("dense", shape, 0, value_bytes=value_bytes)
    fixed = format_bytes(fmt, shape, 0, value_bytes=value_bytes, index_bytes=index_bytes)
    per_nnz = format_bytes(fmt, shape, 1, value_bytes=value_bytes, index_bytes=index_bytes) - fixed
    nnz = math.ceil((dense - fixed) / per_nnz) - 1  # largest nnz with fixed + nnz * per_nnz < dense
    return max(nnz, 0) / numel


# --- checks -----------------------------------------------------------------------------


def _check_shape(shape: object) -> tuple[int, int]:
    if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) != 2:
        raise ValueError(f"`shape` must be (rows, columns); got {shape!r}")
    return check_int("shape[0]", shape[0], 1), check_int("shape[1]", shape[1], 1)


def _check_dense(dense: torch.Tensor) -> torch.Tensor:
    check_tensor("dense", dense, ndim=2, finite=True)
    return dense.detach()


def _check_index(name: str, t: object, length: int | None = None) -> torch.Tensor:
    check_tensor(name, t, ndim=1, nonempty=False)
    if t.dtype not in INDEX_DTYPES + (torch.uint8,):
        raise TypeError(f"`{name}` must hold integers; got dtype {t.dtype}")
    if length is not None and t.numel() != length:
        raise ValueError(f"`{name}` must have length {length}; got {t.numel()}")
    return t.long()


def _check_range(name: str, t: torch.Tensor, high: int) -> None:
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= high):
        bad = t[(t < 0) | (t >= high)][0]
        raise ValueError(f"`{name}` must hold indices in [0, {high - 1}]; got {int(bad)}")


def _check_values(values: object, length: int | None = None) -> torch.Tensor:
    check_tensor("values", values, ndim=1, nonempty=False, finite=True)
    if length is not None and values.numel() != length:
        raise ValueError(f"`values` must have length {length} (one per stored entry); got {values.numel()}")
    return values


def _index_dtype(index_dtype: torch.dtype, largest: int) -> torch.dtype:
    if index_dtype not in INDEX_DTYPES:
        raise ValueError(f"`index_dtype` must be one of {list(INDEX_DTYPES)}; got {index_dtype!r}")
    if largest > torch.iinfo(index_dtype).max:
        raise ValueError(f"`index_dtype` {index_dtype} cannot hold index {largest}; use a wider one")
    return index_dtype


# --- bit packing (shared by the bitmask, relative indices and N:M metadata) -------------------


def pack_bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack integer ``codes`` in [0, 2^bits) into bytes, ``8 / bits`` per byte, first code in the
    lowest bits. ``bits`` must divide 8 (1, 2, 4 or 8)."""
    bits = check_choice("bits", bits, (1, 2, 4, 8))
    check_tensor("codes", codes, ndim=1, nonempty=False)
    if codes.is_floating_point() or codes.is_complex():
        raise TypeError(f"`codes` must hold integers (floats would be truncated); got dtype {codes.dtype}")
    codes = codes.long()
    _check_range("codes", codes, 2**bits)
    per_byte = 8 // bits
    padded = torch.zeros(math.ceil(codes.numel() / per_byte) * per_byte, dtype=torch.long)
    padded[: codes.numel()] = codes
    shifts = torch.arange(per_byte) * bits
    return (padded.view(-1, per_byte) << shifts).sum(dim=1).to(torch.uint8)


def unpack_bits(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """The first ``count`` codes of :func:`pack_bits`'s output, as int64."""
    bits = check_choice("bits", bits, (1, 2, 4, 8))
    check_tensor("packed", packed, ndim=1, nonempty=False)
    if packed.dtype != torch.uint8:
        raise TypeError(f"`packed` must be uint8; got dtype {packed.dtype}")
    per_byte = 8 // bits
    count = check_int("count", count, 0)
    if packed.numel() != math.ceil(count / per_byte):
        raise ValueError(f"`packed` must have {math.ceil(count / per_byte)} bytes for {count} codes of {bits} bits; got {packed.numel()}")
    shifts = torch.arange(per_byte) * bits
    codes = (packed.long()[:, None] >> shifts) & (2**bits - 1)
    return codes.flatten()[:count]


# --- COO --------------------------------------------------------------------------------


def to_coo(dense: torch.Tensor, index_dtype: torch.dtype = torch.int32) -> COO:
    """COO of a 2-D tensor: the non-zeros in row-major order (as ``scipy.sparse.coo_array``)."""
    dense = _check_dense(dense)
    dtype = _index_dtype(index_dtype, max(dense.shape) - 1)
    row, col = dense.nonzero(as_tuple=True)
    return COO(tuple(dense.shape), row.to(dtype), col.to(dtype), dense[row, col].clone())


def from_coo(coo: COO) -> torch.Tensor:
    """The dense matrix. Refuses indices out of range, out of row-major order or repeated."""
    if not isinstance(coo, COO):
        raise TypeError(f"`coo` must be a COO; got {type(coo).__name__}")
    rows, cols = _check_shape(coo.shape)
    values = _check_values(coo.values)
    row = _check_index("row", coo.row, values.numel())
    col = _check_index("col", coo.col, values.numel())
    _check_range("row", row, rows)
    _check_range("col", col, cols)
    flat = row * cols + col
    if flat.numel() > 1 and not bool((flat[1:] > flat[:-1]).all()):
        k = int((flat[1:] <= flat[:-1]).nonzero()[0]) + 1
        raise ValueError(f"`row`, `col` must be in row-major order without repeats; entry {k} ({int(row[k])}, {int(col[k])}) follows ({int(row[k - 1])}, {int(col[k - 1])})")
    dense = torch.zeros(rows * cols, dtype=values.dtype)
    dense[flat] = values
    return dense.view(rows, cols)


# --- CSR --------------------------------------------------------------------------------


def to_csr(dense: torch.Tensor, index_dtype: torch.dtype = torch.int32) -> CSR:
    """CSR of a 2-D tensor: the same arrays as ``dense.to_sparse_csr()`` and SciPy's ``csr_matrix``."""
    dense = _check_dense(dense)
    row, col = dense.nonzero(as_tuple=True)
    dtype = _index_dtype(index_dtype, max(row.numel(), dense.shape[1] - 1))
    counts = torch.bincount(row, minlength=dense.shape[0])
    crow = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])  # row r: crow[r]..crow[r+1]
    return CSR(tuple(dense.shape), crow.to(dtype), col.to(dtype), dense[row, col].clone())


def from_csr(csr: CSR) -> torch.Tensor:
    """The dense matrix. Refuses row pointers that are not 0 .. nnz non-decreasing, columns out
    of range, and columns not strictly increasing within a row."""
    if not isinstance(csr, CSR):
        raise TypeError(f"`csr` must be a CSR; got {type(csr).__name__}")
    rows, cols = _check_shape(csr.shape)
    values = _check_values(csr.values)
    crow = _check_index("crow_indices", csr.crow_indices, rows + 1)
    col = _check_index("col_indices", csr.col_indices, values.numel())
    if int(crow[0]) != 0 or int(crow[-1]) != values.numel():
        raise ValueError(f"`crow_indices` must start at 0 and end at nnz = {values.numel()}; got {int(crow[0])} .. {int(crow[-1])}")
    if not bool((crow[1:] >= crow[:-1]).all()):
        r = int((crow[1:] < crow[:-1]).nonzero()[0])
        raise ValueError(f"`crow_indices` must be non-decreasing; got {int(crow[r])} then {int(crow[r + 1])} at row {r}")
    _check_range("col_indices", col, cols)
    row = torch.repeat_interleave(torch.arange(rows), crow[1:] - crow[:-1])
    same_row = row[1:] == row[:-1]
    if bool((same_row & (col[1:] <= col[:-1])).any()):
        k = int((same_row & (col[1:] <= col[:-1])).nonzero()[0]) + 1
        raise ValueError(f"`col_indices` must be strictly increasing within each row; row {int(row[k])} has {int(col[k - 1])} then {int(col[k])}")
    dense = torch.zeros(rows, cols, dtype=values.dtype)
    dense[row, col] = values
    return dense


# --- bitmask ----------------------------------------------------------------------------


def to_bitmask(dense: torch.Tensor) -> Bitmask:
    """One bit per entry (packed most significant bit first, as ``numpy.packbits``) plus the non-zeros."""
    dense = _check_dense(dense)
    flat = dense.flatten()
    present = (flat != 0).long()
    padded = torch.zeros(math.ceil(flat.numel() / 8) * 8, dtype=torch.long)
    padded[: flat.numel()] = present
    bits = (padded.view(-1, 8) << torch.arange(7, -1, -1)).sum(dim=1).to(torch.uint8)
    return Bitmask(tuple(dense.shape), bits, flat[flat != 0].clone())


def from_bitmask(bitmask: Bitmask) -> torch.Tensor:
    """The dense matrix. Refuses a mask of the wrong length, set padding bits, and a number of
    values that differs from the number of set bits."""
    if not isinstance(bitmask, Bitmask):
        raise TypeError(f"`bitmask` must be a Bitmask; got {type(bitmask).__name__}")
    rows, cols = _check_shape(bitmask.shape)
    numel = rows * cols
    bits = _check_index("bits", bitmask.bits, math.ceil(numel / 8))
    if bitmask.bits.dtype != torch.uint8:
        raise TypeError(f"`bits` must be uint8; got dtype {bitmask.bits.dtype}")
    present = ((bits[:, None] >> torch.arange(7, -1, -1)) & 1).flatten()
    if bool(present[numel:].any()):
        raise ValueError(f"`bits` must have its {present.numel() - numel} padding bit(s) after entry {numel} clear; some are set")
    present = present[:numel].bool()
    values = _check_values(bitmask.values, int(present.sum()))
    dense = torch.zeros(numel, dtype=values.dtype)
    dense[present] = values
    return dense.view(rows, cols)


# --- relative indices (Deep Compression, EIE) ----------------------------------------------


def to_relative(dense: torch.Tensor, index_bits: int = 4) -> Relative:
    """Relative indices [1, 2]: per entry, the zeros since the previous entry in ``index_bits``
    bits, inserting a filler zero wherever a gap exceeds ``2^index_bits - 1``."""
    dense = _check_dense(dense)
    b = check_choice("index_bits", index_bits, (1, 2, 4, 8))
    flat = dense.flatten()
    positions = flat.nonzero().flatten()
    gaps = torch.diff(positions, prepend=torch.tensor([-1])) - 1  # zeros before each non-zero
    top = 2**b - 1
    fillers = torch.div(gaps, top + 1, rounding_mode="floor")  # each filler covers top zeros + itself
    ends = torch.cumsum(fillers + 1, dim=0) - 1  # where each non-zero lands among the entries
    entries = int(ends[-1]) + 1 if ends.numel() else 0
    codes = torch.full((entries,), top, dtype=torch.long)
    codes[ends] = gaps - fillers * (top + 1)
    values = torch.zeros(entries, dtype=dense.dtype)
    values[ends] = flat[positions]
    return Relative(tuple(dense.shape), pack_bits(codes, b), values, b)


def from_relative(rel: Relative) -> torch.Tensor:
    """The dense matrix. Refuses packed gaps of the wrong length and entries past the end."""
    if not isinstance(rel, Relative):
        raise TypeError(f"`rel` must be a Relative; got {type(rel).__name__}")
    rows, cols = _check_shape(rel.shape)
    values = _check_values(rel.values)
    b = check_choice("index_bits", rel.index_bits, (1, 2, 4, 8))
    check_tensor("gaps", rel.gaps, ndim=1, nonempty=False)
    if rel.gaps.dtype != torch.uint8 or rel.gaps.numel() != math.ceil(values.numel() * b / 8):
        raise ValueError(f"`gaps` must be {math.ceil(values.numel() * b / 8)} uint8 bytes ({values.numel()} gaps of {b} bits); "
                         f"got {rel.gaps.numel()} of {rel.gaps.dtype}")
    gaps = unpack_bits(rel.gaps, b, values.numel())
    positions = torch.cumsum(gaps + 1, dim=0) - 1
    if positions.numel() and int(positions[-1]) >= rows * cols:
        raise ValueError(f"`gaps` must keep every entry inside the {rows * cols} entries of the matrix; the last lands at {int(positions[-1])}")
    dense = torch.zeros(rows * cols, dtype=values.dtype)
    dense[positions] = values
    return dense.view(rows, cols)


def count_fillers(dense: torch.Tensor, index_bits: int = 4) -> int:
    """Filler zeros :func:`to_relative` inserts for ``dense`` (for :func:`format_bytes`)."""
    dense = _check_dense(dense)
    b = check_choice("index_bits", index_bits, (1, 2, 4, 8))
    positions = dense.flatten().nonzero().flatten()
    gaps = torch.diff(positions, prepend=torch.tensor([-1])) - 1
    return int(torch.div(gaps, 2**b, rounding_mode="floor").sum())


def encode(dense: torch.Tensor, fmt: str, **kwargs: object) -> Encoded:
    """``to_coo`` / ``to_csr`` / ``to_bitmask`` / ``to_relative`` by name."""
    check_choice("fmt", fmt, FORMATS[1:])
    allowed = {"coo": {"index_dtype"}, "csr": {"index_dtype"}, "bitmask": set(), "relative": {"index_bits"}}[fmt]
    if set(kwargs) - allowed:
        raise TypeError(f"`kwargs` for fmt {fmt!r} may only be {sorted(allowed)}; got {sorted(kwargs)}")
    return {"coo": to_coo, "csr": to_csr, "bitmask": to_bitmask, "relative": to_relative}[fmt](dense, **kwargs)


def decode(encoded: Encoded) -> torch.Tensor:
    """The dense matrix of any format above."""
    decoders = {COO: from_coo, CSR: from_csr, Bitmask: from_bitmask, Relative: from_relative}
    if type(encoded) not in decoders:
        raise TypeError(f"`encoded` must be a COO, CSR, Bitmask or Relative; got {type(encoded).__name__}")
    return decoders[type(encoded)](encoded)
