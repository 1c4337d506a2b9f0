"""Each checker accepts the reference, rejects a plausible wrong answer, and reports a stub."""

from __future__ import annotations

import torch

from compresskit.course.exercises import quantization as ex


def stub(*args):
    raise NotImplementedError


def test_scale_zero_point(capsys):
    assert ex.check_scale_zero_point(ex.reference_scale_zero_point)

    def no_zero_in_range(min_val, max_val, quant_min, quant_max):  # forgets to include 0
        scale = (max_val - min_val) / (quant_max - quant_min)
        return scale, int(quant_min - round(min_val / scale))

    assert not ex.check_scale_zero_point(no_zero_in_range)
    assert "all positive [2, 4]" in capsys.readouterr().out
    assert not ex.check_scale_zero_point(stub)
    assert "not attempted yet" in capsys.readouterr().out


def test_fake_quantize(capsys):
    assert ex.check_fake_quantize(ex.reference_fake_quantize)

    def no_clamp(x, scale, zero_point, quant_min, quant_max):
        return (torch.round(x / scale) + zero_point - zero_point) * scale

    assert not ex.check_fake_quantize(no_clamp)
    assert "values clamped" in capsys.readouterr().out

    def half_up(x, scale, zero_point, quant_min, quant_max):  # rounds ties up
        q = torch.clamp(torch.floor(x / scale + 0.5) + zero_point, quant_min, quant_max)
        return (q - zero_point) * scale

    assert not ex.check_fake_quantize(half_up)
    assert "half to even" in capsys.readouterr().out
    assert not ex.check_fake_quantize(stub)
    assert "not attempted yet" in capsys.readouterr().out


def test_kmeans_codebook(capsys):
    assert ex.check_kmeans_codebook(ex.reference_kmeans_codebook)

    def random_init(weight, bits, n_iter):  # initialised at quantiles, not linearly
        w = weight.flatten()
        c = torch.quantile(w, torch.linspace(0, 1, 2**bits + 2)[1:-1])
        for _ in range(n_iter):
            idx = (w[:, None] - c[None]).abs().argmin(1)
            c = torch.stack([w[idx == j].mean() if (idx == j).any() else c[j] for j in range(len(c))])
        return c

    assert not ex.check_kmeans_codebook(random_init)
    assert "linear initialisation" in capsys.readouterr().out
    assert not ex.check_kmeans_codebook(stub)
    assert "not attempted yet" in capsys.readouterr().out


def test_to_fixed_point(capsys):
    assert ex.check_to_fixed_point(ex.reference_to_fixed_point)

    def no_saturation(x, m, n):
        return torch.round(x * 2**n).long()

    assert not ex.check_to_fixed_point(no_saturation)
    assert "saturate" in capsys.readouterr().out
    assert not ex.check_to_fixed_point(stub)
    assert "not attempted yet" in capsys.readouterr().out
