"""Sparse formats and N:M storage: exact round trips, byte formulas equal the bytes stored,
the same arrays as torch.sparse and scipy.sparse, and corrupt indices refused."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compresskit import sparsity as S


def sparse_matrix(rows: int, cols: int, density: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    dense = torch.randn(rows, cols, generator=g)
    return dense * (torch.rand(rows, cols, generator=g) < density)


HAND = torch.tensor([[0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.5, 0.0, 0.0, -3.0]])


# --- hand cases -------------------------------------------------------------------------

def test_csr_by_hand():
    csr = S.to_csr(HAND)
    assert csr.crow_indices.tolist() == [0, 1, 1, 3]  # row 1 is empty
    assert csr.col_indices.tolist() == [1, 0, 3]
    assert csr.values.tolist() == [2.0, 1.5, -3.0]
    assert S.nbytes(csr) == 4 * 4 + 3 * (4 + 4) == 40  # Eq. (3): (R + 1) i + nnz (i + v)


def test_coo_by_hand():
    coo = S.to_coo(HAND)
    assert coo.row.tolist() == [0, 2, 2] and coo.col.tolist() == [1, 0, 3]
    assert S.nbytes(coo) == 3 * (2 * 4 + 4) == 36


def test_bitmask_by_hand_matches_numpy_packbits():
    bm = S.to_bitmask(HAND)
    assert bm.bits.tolist() == np.packbits((HAND != 0).numpy().flatten()).tolist() == [0b01000000, 0b10010000]
    assert S.nbytes(bm) == 2 + 3 * 4


def test_relative_indices_by_hand_with_a_filler_zero():
    row = torch.zeros(1, 20)
    row[0, 1], row[0, 3], row[0, 19] = 1.0, 2.0, 3.0  # gaps 1, 1, 15
    rel = S.to_relative(row, index_bits=2)  # gaps up to 3; 15 = 4 + 4 + 4 + 3: three fillers
    gaps = S.unpack_bits(rel.gaps, 2, rel.values.numel())
    assert gaps.tolist() == [1, 1, 3, 3, 3, 3]
    assert rel.values.tolist() == [1.0, 2.0, 0.0, 0.0, 0.0, 3.0]
    assert S.count_fillers(row, 2) == 3
    assert torch.equal(S.from_relative(rel), row)


def test_pack_bits_lowest_bits_first():
    assert S.pack_bits(torch.tensor([1, 2, 3, 0, 1]), 2).tolist() == [1 | 2 << 2 | 3 << 4, 1]
    assert S.unpack_bits(torch.tensor([0x4B], dtype=torch.uint8), 4, 2).tolist() == [0xB, 0x4]


# --- round trips and cross-checks ---------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 9), cols=st.integers(1, 40), density=st.floats(0, 1), seed=st.integers(0, 1000),
       fmt=st.sampled_from(["coo", "csr", "bitmask", "relative"]))
def test_round_trip_is_exact_and_bytes_match_the_formula(rows, cols, density, seed, fmt):
    dense = sparse_matrix(rows, cols, density, seed)
    encoded = S.encode(dense, fmt)
    assert torch.equal(S.decode(encoded), dense)
    nnz = int((dense != 0).sum())
    assert S.nbytes(encoded) == S.format_bytes(fmt, (rows, cols), nnz, fillers=S.count_fillers(dense))


@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 1.0])
def test_csr_equals_torch_and_scipy(density):
    dense = sparse_matrix(17, 23, density, seed=3)
    ours = S.to_csr(dense)
    torch_csr = dense.to_sparse_csr()
    scipy_csr = sp.csr_matrix(dense.numpy())
    assert ours.crow_indices.tolist() == torch_csr.crow_indices().tolist() == scipy_csr.indptr.tolist()
    assert ours.col_indices.tolist() == torch_csr.col_indices().tolist() == scipy_csr.indices.tolist()
    assert torch.equal(ours.values, torch_csr.values()) and np.array_equal(ours.values.numpy(), scipy_csr.data)
    # scipy stores int32 indices too: our byte count is the sum of its arrays' bytes
    assert S.nbytes(ours) == scipy_csr.indptr.nbytes + scipy_csr.indices.nbytes + scipy_csr.data.nbytes


def test_coo_equals_torch_and_scipy():
    dense = sparse_matrix(11, 7, 0.3, seed=4)
    ours = S.to_coo(dense)
    torch_coo = dense.to_sparse().coalesce()
    scipy_coo = sp.coo_array(dense.numpy())
    assert torch.equal(torch.stack([ours.row, ours.col]).long(), torch_coo.indices())
    assert ours.row.tolist() == scipy_coo.row.tolist() and ours.col.tolist() == scipy_coo.col.tolist()
    assert torch.equal(ours.values, torch_coo.values())


def test_crossover_densities():
    shape = (256, 256)
    for fmt, limit in (("csr", 4 / 8), ("coo", 4 / 12), ("bitmask", 1 - 1 / 32)):
        d = S.crossover_density(fmt, shape)
        nnz = round(d * 256 * 256)
        dense_bytes = S.format_bytes("dense", shape, 0)
        assert S.format_bytes(fmt, shape, nnz) < dense_bytes <= S.format_bytes(fmt, shape, nnz + 1)
        assert d == pytest.approx(limit, abs=0.002)
    # int16 indices move CSR's crossover from 1/2 to 2/3
    assert S.crossover_density("csr", shape, index_bytes=2) == pytest.approx(2 / 3, abs=0.002)


# --- corrupt input is refused ------------------------------------------------------------------

def _csr(**change):
    return dataclasses.replace(S.to_csr(HAND), **change)


@pytest.mark.parametrize("change, match", [
    ({"col_indices": torch.tensor([1, -1, 3], dtype=torch.int32)}, r"`col_indices` must hold indices in \[0, 3\]; got -1"),
    ({"col_indices": torch.tensor([1, 0, 4], dtype=torch.int32)}, r"`col_indices` must hold indices in \[0, 3\]; got 4"),
    ({"col_indices": torch.tensor([1, 3, 0], dtype=torch.int32)}, "strictly increasing within each row; row 2 has 3 then 0"),
    ({"col_indices": torch.tensor([1, 3, 3], dtype=torch.int32)}, "strictly increasing"),
    ({"col_indices": torch.tensor([1, 0], dtype=torch.int32)}, "`col_indices` must have length 3; got 2"),
    ({"crow_indices": torch.tensor([0, 2, 1, 3], dtype=torch.int32)}, "`crow_indices` must be non-decreasing"),
    ({"crow_indices": torch.tensor([0, 1, 3], dtype=torch.int32)}, "`crow_indices` must have length 4; got 3"),
    ({"crow_indices": torch.tensor([0, 1, 1, 2], dtype=torch.int32)}, "end at nnz = 3; got 0 .. 2"),
    ({"values": torch.tensor([1.0, 2.0])}, "`col_indices` must have length 2; got 3"),
    ({"col_indices": torch.tensor([1.0, 0.0, 3.0])}, "`col_indices` must hold integers"),
])
def test_csr_decode_refuses_corrupt_arrays(change, match):
    with pytest.raises((ValueError, TypeError), match=match):
        S.from_csr(_csr(**change))


@pytest.mark.parametrize("change, match", [
    ({"row": torch.tensor([0, 3, 2], dtype=torch.int32)}, r"`row` must hold indices in \[0, 2\]; got 3"),
    ({"col": torch.tensor([1, -2, 3], dtype=torch.int32)}, "got -2"),
    ({"col": torch.tensor([1, 3, 0], dtype=torch.int32)}, "row-major order without repeats; entry 2"),
    ({"row": torch.tensor([0, 2], dtype=torch.int32)}, "`row` must have length 3"),
])
def test_coo_decode_refuses_corrupt_arrays(change, match):
    with pytest.raises(ValueError, match=match):
        S.from_coo(dataclasses.replace(S.to_coo(HAND), **change))


def test_bitmask_decode_refuses_corrupt_arrays():
    bm = S.to_bitmask(HAND)
    with pytest.raises(ValueError, match="`values` must have length 3"):
        S.from_bitmask(dataclasses.replace(bm, values=bm.values[:2]))
    with pytest.raises(ValueError, match="padding bit"):
        S.from_bitmask(dataclasses.replace(bm, bits=torch.tensor([0b01000000, 0b00001011], dtype=torch.uint8)))
    with pytest.raises(ValueError, match="`bits` must have length 2; got 1"):
        S.from_bitmask(dataclasses.replace(bm, bits=bm.bits[:1]))


def test_relative_decode_refuses_entries_past_the_end():
    rel = S.to_relative(HAND)
    too_far = S.pack_bits(torch.tensor([1, 15, 15]), 4)
    with pytest.raises(ValueError, match="inside the 12 entries .* the last lands at 33"):
        S.from_relative(dataclasses.replace(rel, gaps=too_far))
    with pytest.raises(ValueError, match=r"`gaps` must be 2 uint8 bytes \(3 gaps of 4 bits\); got 1"):
        S.from_relative(dataclasses.replace(rel, gaps=rel.gaps[:1]))


@pytest.mark.parametrize("call, error, match", [
    (lambda: S.to_csr(torch.ones(2, 2, 2)), ValueError, "`dense` must have 2 dimensions; got shape"),
    (lambda: S.to_csr([[1.0]]), TypeError, "`dense` must be a torch.Tensor"),
    (lambda: S.to_csr(torch.tensor([[float("nan")]])), ValueError, "`dense` must be finite"),
    (lambda: S.to_coo(torch.ones(2, 2), index_dtype=torch.float32), ValueError, "`index_dtype` must be one of"),
    (lambda: S.to_csr(torch.ones(2, 40000), index_dtype=torch.int16), ValueError, "cannot hold index"),
    (lambda: S.to_relative(torch.ones(2, 2), index_bits=3), ValueError, r"`index_bits` must be one of \[1, 2, 4, 8\]; got 3"),
    (lambda: S.format_bytes("csc", (2, 2), 1), ValueError, "`fmt` must be one of"),
    (lambda: S.format_bytes("csr", (2, 2), 5), ValueError, r"`nnz` must be an integer in \[0, 4\]; got 5"),
    (lambda: S.format_bytes("csr", (2,), 1), ValueError, r"`shape` must be \(rows, columns\)"),
    (lambda: S.crossover_density("relative", (2, 2)), ValueError, "`fmt` must be one of"),
    (lambda: S.pack_bits(torch.tensor([4]), 2), ValueError, r"`codes` must hold indices in \[0, 3\]; got 4"),
    (lambda: S.pack_bits(torch.tensor([1]), 3), ValueError, "`bits` must be one of"),
    (lambda: S.unpack_bits(torch.tensor([1]), 2, 1), TypeError, "`packed` must be uint8"),
    (lambda: S.decode(torch.ones(2, 2)), TypeError, "`encoded` must be a COO, CSR, Bitmask or Relative"),
    (lambda: S.nbytes("csr"), TypeError, "`encoded` must be"),
    (lambda: S.from_csr(S.to_coo(HAND)), TypeError, "`csr` must be a CSR; got COO"),
])
def test_bad_input_is_refused_with_the_argument_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_encoding_leaves_the_input_unchanged():
    dense = sparse_matrix(5, 6, 0.5)
    before = dense.clone()
    for fmt in ("coo", "csr", "bitmask", "relative"):
        encoded = S.encode(dense, fmt)
        encoded.values.add_(1)  # the format owns its values: changing them leaves the input alone
    assert torch.equal(dense, before)


# --- N:M ----------------------------------------------------------------------------------

def test_nm_mask_by_hand():
    w = torch.tensor([[0.1, -0.9, 0.3, 0.2, 5.0, 4.0, -3.0, 0.0]])
    assert S.nm_mask(w, 2, 4).tolist() == [[0, 1, 1, 0, 1, 1, 0, 0]]
    assert S.nm_mask(w, 1, 2).tolist() == [[0, 1, 1, 0, 1, 0, 1, 0]]


def test_nm_mask_keeps_n_per_group_of_a_conv_weight():
    w = torch.randn(6, 4, 3, 3)  # rows of 36, groups of 4 run across input channels
    mask = S.nm_mask(w)
    assert mask.shape == w.shape and (mask.reshape(-1, 4).sum(1) == 2).all()
    assert S.is_nm_sparse(w * mask) and not S.is_nm_sparse(w)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 6), groups=st.integers(1, 8), nm=st.sampled_from([(2, 4), (1, 4), (1, 2), (4, 8), (3, 4)]),
       seed=st.integers(0, 1000))
def test_nm_round_trip_is_exact(rows, groups, nm, seed):
    n, m = nm
    w = torch.randn(rows, groups * m, generator=torch.Generator().manual_seed(seed))
    sparse = w * S.nm_mask(w, n, m)
    packed = S.pack_nm(sparse, n, m)
    assert torch.equal(S.unpack_nm(packed), sparse)
    assert torch.equal(S.unpack_nm(S.pack_nm(w, n, m)), sparse)
    assert S.packed_bytes(packed) == S.nm_bytes(w.numel(), n, m)


def test_nm_storage_bytes_for_2_4():
    assert S.nm_bytes(1024, 2, 4) == 512 * 4 + 512 * 2 // 8 == 2176  # 2.125 bytes per weight
    assert S.nm_bytes(1024, 2, 4, value_bytes=2) == 1152
    assert S.index_bits(4) == 2 and S.index_bits(8) == 4 and S.index_bits(2) == 1


def test_nm_decode_refuses_corrupt_indices():
    packed = S.pack_nm(torch.tensor([[0.1, -0.9, 0.3, 0.2, 5.0, 4.0, -3.0, 0.0]]))
    repeated = S.pack_bits(torch.tensor([1, 1, 0, 1]), 2)
    with pytest.raises(ValueError, match=r"strictly increasing within each group; group 0 has \[1, 1\]"):
        S.unpack_nm(dataclasses.replace(packed, indices=repeated))
    backwards = S.pack_bits(torch.tensor([1, 2, 1, 0]), 2)
    with pytest.raises(ValueError, match=r"group 1 has \[1, 0\]"):
        S.unpack_nm(dataclasses.replace(packed, indices=backwards))
    with pytest.raises(ValueError, match="`values` must hold 4 entries"):
        S.unpack_nm(dataclasses.replace(packed, values=packed.values[:, :3]))
    with pytest.raises(ValueError, match=r"`packed.indices` must be 1 uint8 bytes \(4 positions of 2 bits\); got 2"):
        S.unpack_nm(dataclasses.replace(packed, indices=torch.zeros(2, dtype=torch.uint8)))


@pytest.mark.parametrize("call, match", [
    (lambda: S.nm_mask(torch.randn(4, 8), 3, 2), r"`n` must be at most `m` = 2 .*; got n = 3"),
    (lambda: S.nm_mask(torch.randn(4, 6), 2, 4), r"`m` must divide the row length 6 of `weight` \(4, 6\); got m = 4"),
    (lambda: S.nm_mask(torch.randn(8), 2, 4), "`weight` must have 2 or 3 or 4 dimensions"),
    (lambda: S.nm_mask(torch.randn(4, 8), 0, 4), r"`n` must be an integer in \[1, inf\]; got 0"),
    (lambda: S.nm_bytes(10, 2, 4), r"`m` must divide `numel` = 10"),
    (lambda: S.unpack_nm(torch.ones(2)), "`packed` must be an NMPacked"),
])
def test_nm_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_2_4_pattern_is_the_one_torch_semi_structured_expects():
    """torch's to_sparse_semi_structured needs CUDA; its CPU-side check of the pattern is what we can test:
    the dense 2:4 weight has exactly two non-zeros in every group of four along the rows."""
    w = torch.randn(64, 64)
    sparse = w * S.nm_mask(w)
    assert ((sparse.reshape(64, 16, 4) != 0).sum(-1) == 2).all()
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.sparse.to_sparse_semi_structured(sparse)
    assert math.isclose(S.nm_bytes(sparse.numel()) / (sparse.numel() * 4), 2.125 / 4)
