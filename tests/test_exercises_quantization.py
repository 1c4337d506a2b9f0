"""Each quantization checker accepts an independent worked answer, rejects the plausible wrong
answers a learner writes (each with a message that points at the mistake) and reports an
untouched stub as not attempted.

The worked answers below are written here, in plain Python and torch, not taken from
compresskit: a checker is tested against answers it did not compute itself.
"""

from __future__ import annotations

import math

import pytest
from exercise_contract import contract_tests
import torch

from compresskit.course.exercises import quantization as ex


def stub(*args):
    raise NotImplementedError  # your code here


# --- worked answers, independent of compresskit ---------------------------------------------

def scale_zero_point(min_val, max_val, quant_min, quant_max):
    lo, hi = min(min_val, 0.0), max(max_val, 0.0)  # the range must include 0
    scale = (hi - lo) / (quant_max - quant_min)
    return scale, quant_min - round(lo / scale)  # Python's round: half to even


def fake_quantize(x, scale, zero_point, quant_min, quant_max):
    q = torch.clamp(torch.round(x / scale) + zero_point, quant_min, quant_max)
    return (q - zero_point) * scale


def kmeans_codebook(weight, bits, n_iter):
    w = weight.flatten()
    codebook = torch.linspace(float(w.min()), float(w.max()), 2**bits)
    for _ in range(n_iter):
        nearest = (w[:, None] - codebook[None, :]).abs().argmin(dim=1)
        codebook = torch.stack([w[nearest == j].mean() if (nearest == j).any() else codebook[j]
                                for j in range(len(codebook))])
    return codebook


def to_fixed_point(x, m, n):
    return torch.round(x * 2**n).clamp(-(2 ** (m + n)), 2 ** (m + n) - 1).to(torch.int64)


# --- plausible wrong answers ----------------------------------------------------------------

def szp_range_without_zero(min_val, max_val, quant_min, quant_max):
    scale = (max_val - min_val) / (quant_max - quant_min)
    return scale, quant_min - round(min_val / scale)


def szp_two_to_the_b_steps(min_val, max_val, quant_min, quant_max):  # 2**b instead of 2**b - 1
    lo, hi = min(min_val, 0.0), max(max_val, 0.0)
    scale = (hi - lo) / (quant_max - quant_min + 1)
    return scale, quant_min - round(lo / scale)


def szp_truncated_zero_point(min_val, max_val, quant_min, quant_max):
    lo, hi = min(min_val, 0.0), max(max_val, 0.0)
    scale = (hi - lo) / (quant_max - quant_min)
    return scale, quant_min - int(lo / scale)


def szp_floor_zero_point(min_val, max_val, quant_min, quant_max):
    lo, hi = min(min_val, 0.0), max(max_val, 0.0)
    scale = (hi - lo) / (quant_max - quant_min)
    return scale, quant_min - math.floor(lo / scale)


def szp_half_up_zero_point(min_val, max_val, quant_min, quant_max):
    lo, hi = min(min_val, 0.0), max(max_val, 0.0)
    scale = (hi - lo) / (quant_max - quant_min)
    return scale, quant_min - math.floor(lo / scale + 0.5)


def szp_sign_flipped(min_val, max_val, quant_min, quant_max):
    lo, hi = min(min_val, 0.0), max(max_val, 0.0)
    scale = (hi - lo) / (quant_max - quant_min)
    return scale, quant_min + round(lo / scale)


def fq_no_clamp(x, scale, zero_point, quant_min, quant_max):
    return torch.round(x / scale) * scale


def fq_half_up(x, scale, zero_point, quant_min, quant_max):
    q = torch.clamp(torch.floor(x / scale + 0.5) + zero_point, quant_min, quant_max)
    return (q - zero_point) * scale


def fq_truncation(x, scale, zero_point, quant_min, quant_max):
    q = torch.clamp((x / scale).long() + zero_point, quant_min, quant_max)
    return (q - zero_point).float() * scale


def fq_forgets_zero_point_on_the_way_back(x, scale, zero_point, quant_min, quant_max):
    q = torch.clamp(torch.round(x / scale) + zero_point, quant_min, quant_max)
    return q * scale


def fq_clamps_before_adding_zero_point(x, scale, zero_point, quant_min, quant_max):
    q = torch.clamp(torch.round(x / scale), quant_min, quant_max) + zero_point
    return (q - zero_point) * scale


def km_one_centroid_short(weight, bits, n_iter):  # 2**bits - 1 centroids
    return kmeans_codebook(weight, bits, n_iter)[:-1]


def km_empty_cluster_nan(weight, bits, n_iter):
    w = weight.flatten()
    codebook = torch.linspace(float(w.min()), float(w.max()), 2**bits)
    for _ in range(n_iter):
        nearest = (w[:, None] - codebook[None, :]).abs().argmin(dim=1)
        codebook = torch.stack([w[nearest == j].mean() for j in range(len(codebook))])
    return codebook


def km_quantile_init(weight, bits, n_iter):
    w = weight.flatten()
    codebook = torch.quantile(w, torch.linspace(0, 1, 2**bits + 2)[1:-1])
    for _ in range(n_iter):
        nearest = (w[:, None] - codebook[None, :]).abs().argmin(dim=1)
        codebook = torch.stack([w[nearest == j].mean() if (nearest == j).any() else codebook[j]
                                for j in range(len(codebook))])
    return codebook


def km_one_iteration_too_many(weight, bits, n_iter):
    return kmeans_codebook(weight, bits, n_iter + 1)


def km_one_iteration_too_few(weight, bits, n_iter):
    return kmeans_codebook(weight, bits, max(n_iter - 1, 0))


def fp_truncation(x, m, n):
    return (x * 2**n).long().clamp(-(2 ** (m + n)), 2 ** (m + n) - 1)


def fp_floor(x, m, n):
    return torch.floor(x * 2**n).long().clamp(-(2 ** (m + n)), 2 ** (m + n) - 1)


def fp_half_up(x, m, n):
    return torch.floor(x * 2**n + 0.5).long().clamp(-(2 ** (m + n)), 2 ** (m + n) - 1)


def fp_int32(x, m, n):
    return torch.round(x * 2**n).clamp(-(2 ** (m + n)), 2 ** (m + n) - 1).to(torch.int32)


def fp_no_saturation(x, m, n):
    return torch.round(x * 2**n).long()


def fp_symmetric_saturation(x, m, n):  # off by one at the negative end
    return torch.round(x * 2**n).long().clamp(-(2 ** (m + n)) + 1, 2 ** (m + n) - 1)


def fp_forgets_the_sign_bit(x, m, n):  # m + n bits in all instead of 1 + m + n
    return torch.round(x * 2**n).long().clamp(-(2 ** (m + n - 1)), 2 ** (m + n - 1) - 1)


def fq_half_away_from_zero(x, scale, zero_point, quant_min, quant_max):  # C's round(), not torch.round
    v = x / scale
    q = torch.clamp(torch.sign(v) * torch.floor(v.abs() + 0.5) + zero_point, quant_min, quant_max)
    return (q - zero_point) * scale


def fq_rounds_after_adding_zero_point(x, scale, zero_point, quant_min, quant_max):
    q = torch.clamp(torch.round(x / scale + zero_point), quant_min, quant_max)
    return (q - zero_point) * scale


def fq_float32_result(x, scale, zero_point, quant_min, quant_max):  # float64 in, float32 out
    return fake_quantize(x.float(), scale, zero_point, quant_min, quant_max)


def fq_divides_x_in_place(x, scale, zero_point, quant_min, quant_max):
    x /= scale  # writes into the caller's tensor
    q = torch.clamp(torch.round(x) + zero_point, quant_min, quant_max)
    return (q - zero_point) * scale


WRONG = {
    "scale_zero_point": (ex.check_scale_zero_point, scale_zero_point, [
        (szp_range_without_zero, "all positive [2, 4]: the range must include 0"),
        (szp_two_to_the_b_steps, "16 levels are 15 steps, scale = 3 / 15: scale: expected"),
        (szp_truncated_zero_point, "(truncation gives 63): zero_point: expected 64, got 63"),
        (szp_floor_zero_point, "(floor gives 64): zero_point: expected 63, got 64"),
        (szp_half_up_zero_point, "a tie, rounds half to even (-2), zero_point 2: zero_point: expected 2, got 1"),
        (szp_sign_flipped, "zero_point: expected 64, got -64"),
    ]),
    "fake_quantize": (ex.check_fake_quantize, fake_quantize, [
        (fq_no_clamp, "values beyond +-0.7 clamped"),
        (fq_half_up, "ties round half to even (0.25 / 0.5 = 0.5 -> 0)"),
        (fq_truncation, "(truncation and round-half-up do not)"),
        (fq_forgets_zero_point_on_the_way_back, "dequantizing subtracts the zero point"),
        (fq_clamps_before_adding_zero_point, "clamp round(x / scale) + zero_point, not round(x / scale)"),
        (fq_half_away_from_zero, "half away from zero rounds -0.5 to -1: 3 of 5 entries differ"),
        (fq_rounds_after_adding_zero_point, "ties with an odd zero_point 3: round(x / scale) + zero_point, not round(x / scale + zero_point)"),
        (fq_float32_result, "a float64 input: the result keeps x's dtype (float64), as torch.fake_quantize_per_tensor_affine does: "
                            "dtype: expected torch.float64, got torch.float32"),
        (fq_divides_x_in_place, "your function changed its argument `x` (an input must not be modified; work on a copy, e.g. x.clone())"),
    ]),
    "kmeans_codebook": (ex.check_kmeans_codebook, kmeans_codebook, [
        (km_one_centroid_short, "2**bits = 2 centroids: shape: expected (2,), got (1,)"),
        (km_empty_cluster_nan, "an empty cluster keeps its centroid"),
        (km_quantile_init, "n_iter = 0: the linear initialisation"),
        (km_one_iteration_too_many, "n_iter = 0: the linear initialisation"),
        (km_one_iteration_too_few, "n_iter = 1: exactly one assignment and one update"),
    ]),
    "to_fixed_point": (ex.check_to_fixed_point, to_fixed_point, [
        (fp_truncation, "(truncation, floor and round-half-up do not): 4 of 7 entries differ: expected [3, -3, 2, -2, 4, 0, -2], got [2, -2, 2, -2, 3, 0, -1]"),
        (fp_floor, "(truncation, floor and round-half-up do not)"),
        (fp_half_up, "(truncation, floor and round-half-up do not): 1 of 7 entries differ"),
        (fp_int32, "dtype: expected torch.int64, got torch.int32"),
        (fp_no_saturation, "Q1.2 (4 bits): saturate to [-8, 7]"),
        (fp_symmetric_saturation, "saturate to [-32768, 32767]"),
        (fp_forgets_the_sign_bit, "(1 sign bit + 15 bits)"),
    ]),
}

globals().update(contract_tests(WRONG, stub))  # the five contract tests: tests/exercise_contract.py


def test_the_new_fake_quantize_cases_agree_with_torch():
    """The ties-with-an-odd-zero-point and float64 cases: the reference is torch's own op."""
    x = torch.tensor([0.25, 0.75, -0.25, -0.75, 1.25])
    assert torch.equal(ex.reference_fake_quantize(x, 0.5, 3, 0, 15), torch.fake_quantize_per_tensor_affine(x, 0.5, 3, 0, 15))
    x64 = torch.tensor([-1.3, -0.2, 0.0, 0.33, 0.9, 2.5], dtype=torch.float64)
    expected = torch.fake_quantize_per_tensor_affine(x64, 0.125, 2, 0, 15)
    got = ex.reference_fake_quantize(x64, 0.125, 2, 0, 15)
    assert got.dtype == expected.dtype == torch.float64 and torch.equal(got, expected)


def test_the_reference_dtypes_are_what_the_exercises_ask_for():
    x = torch.tensor([0.3, -1.6])
    assert ex.reference_to_fixed_point(x, 1, 2).dtype == torch.int64
    scale, zero_point = ex.reference_scale_zero_point(-1.0, 2.0, 0, 15)
    assert isinstance(scale, float) and isinstance(zero_point, int)


def test_an_answer_that_writes_into_its_input_does_not_change_the_next_case(capsys):
    """The first two cases of check_to_fixed_point (and of check_fake_quantize) share one input
    tensor. An answer that scales it in place is rejected for changing its argument `x`, and
    the second case must see the original values, not the ones the first call wrote."""
    seen = []

    def fixed_point_in_place(x, m, n):
        seen.append(x.clone())
        x.mul_(2**n).round_()  # writes into its input
        return x.clamp(-(2 ** (m + n)), 2 ** (m + n) - 1).to(torch.int64)

    assert ex.check_to_fixed_point(fixed_point_in_place) is False
    assert "your function changed its argument `x`" in capsys.readouterr().out
    assert torch.equal(seen[0], seen[1]) and seen[0].tolist() == pytest.approx([0.3, -0.3, 1.9, -2.5, 0.125, 0.0])

    seen.clear()

    def fake_quantize_in_place(x, scale, zero_point, quant_min, quant_max):
        seen.append(x.clone())
        x.div_(scale).round_().add_(zero_point).clamp_(quant_min, quant_max)
        return (x - zero_point) * scale

    assert ex.check_fake_quantize(fake_quantize_in_place) is False
    assert "your function changed its argument `x`" in capsys.readouterr().out
    assert torch.equal(seen[0], seen[1]) and torch.equal(seen[1], seen[2]) and torch.equal(seen[0], torch.linspace(-2, 2, 17))


def test_a_crashing_answer_is_reported_not_raised(capsys):
    assert ex.check_kmeans_codebook(lambda weight, bits, n_iter: weight[10_000]) is False
    assert "raised IndexError" in capsys.readouterr().out
