"""GPTQ: quantize a layer's weight column by column, spreading each column's error over the rest.

For a Linear layer with weight W (out, in) and calibration inputs X (in, N), GPTQ minimises the
layer's reconstruction error ||WX - ŴX||² row by row. Its Hessian is shared by every row::

    H = 2 X Xᵀ                                                       Eq. (1)-(2) in [1]

Quantizing column q to ŵ_q, Optimal Brain Surgeon's update of the columns not yet quantized (F) is::

    δ_F = -(w_q - ŵ_q) / [H_F⁻¹]_qq · (H_F⁻¹)_{q,:}                  Eq. (2)-(3) in [1]

and removing column q from the inverse is one step of Gaussian elimination (Eq. (4)). Taking the
columns in a fixed order, every row's sequence of inverses is the upper Cholesky factor of H⁻¹
(Sec. 3, "Step 3: Cholesky reformulation"): row q of that factor, divided by its diagonal, is the
update. "Lazy batch updates" (Step 2) apply the updates inside a block of ``block_size`` columns
at once and those to the columns after the block as one matrix product (Eq. (5)-(6) in [1]).

Dampening adds ``percdamp`` times the mean diagonal of H to its diagonal (Sec. 4). With groups,
a group's scale and zero point are chosen from its columns as they are when the group starts (after
the updates so far), as in the reference code. ``act_order`` takes the columns in order of
decreasing diagonal of H (the reference's ``--act-order``); its groups are then fixed from the
original weight before any update (the reference's ``--static-groups``), so the result is stored
in the same contiguous groups as round-to-nearest, and the permutation is undone on return.

References
----------
[1] Frantar, Ashkboos, Hoefler, Alistarh. "GPTQ: Accurate Post-Training Quantization for Generative
    Pre-trained Transformers", 2022, arXiv:2210.17323. Code: github.com/IST-DASLab/gptq (gptq.py).
[2] Hassibi, Stork. "Second order derivatives for network pruning: Optimal Brain Surgeon", 1993.
"""

from __future__ import annotations

import torch

from compresskit._validation import check_int, check_real, check_tensor, check_type
from compresskit.llm.groupwise import QuantizedWeight, _groups, _real, _round, choose_qparams, quant_range

__all__ = ["gptq", "gptq_hessian"]


def gptq_hessian(inputs: torch.Tensor) -> torch.Tensor:
    """``H = 2 X Xᵀ / N`` for a layer's inputs of shape (..., in_features) (N rows in all), float64."""
    check_tensor("inputs", inputs, floating=True, finite=True)
    if inputs.dim() < 2:
        raise ValueError(f"`inputs` must have shape (..., in_features) with at least 2 dimensions; got {tuple(inputs.shape)}")
    X = inputs.detach().reshape(-1, inputs.shape[-1]).double()  # (N, in)
    return 2.0 * X.T @ X / X.shape[0]  # Eq. (1) in [1], averaged over the N samples as the reference does


def _inverse_cholesky(H: torch.Tensor, percdamp: float) -> torch.Tensor:
    """Upper Cholesky factor of (H + λI)⁻¹, λ = percdamp · mean(diag H) (Sec. 3, Step 3 in [1])."""
    H = H.clone()
    H.diagonal().add_(percdamp * H.diagonal().mean())
    try:
        L = torch.linalg.cholesky(H)
        return torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)
    except torch.linalg.LinAlgError as exc:
        raise ValueError(f"`H` plus dampening must be positive definite (more calibration rows than inputs, or a larger "
                         f"`percdamp`); got percdamp={percdamp}: {exc}") from exc


def _check(weight: torch.Tensor, H: torch.Tensor, block_size: int, percdamp: float, act_order: bool) -> None:
    check_tensor("weight", weight, ndim=2, floating=True, finite=True)
    check_tensor("H", H, ndim=2, floating=True, finite=True)
    n = weight.shape[1]
    if H.shape != (n, n):
        raise ValueError(f"`H` must be ({n}, {n}) for a weight of shape {tuple(weight.shape)}; got {tuple(H.shape)}")
    if not torch.allclose(H, H.T, rtol=1e-5, atol=1e-8 * float(H.abs().max())):
        raise ValueError("`H` must be symmetric (2 X Xᵀ); got a matrix that is not")
    check_int("block_size", block_size, 1)
    check_real("percdamp", percdamp, 0.0, 1.0)
    check_type("act_order", act_order, bool)


def gptq(
    weight: torch.Tensor,
    H: torch.Tensor,
    bits: int,
    group_size: int | None = None,
    symmetric: bool = False,
    *,
    block_size: int = 128,
    percdamp: float = 0.01,
    act_order: bool = False,
) -> QuantizedWeight:
    """GPTQ-quantize ``weight`` (out, in) for the Hessian ``H`` (in, in) of its inputs (:func:`gptq_hessian`)."""
    _check(weight, H, block_size, percdamp, act_order)
    quant_min, quant_max = quant_range(bits, symmetric)
    g = _groups(weight, group_size)
    W, H = _real(weight).clone(), H.detach().to(_real(weight).dtype).clone()
    dead = H.diagonal() == 0  # an input that is always zero: its weights do not matter (as in [1]'s code)
    H[dead, dead] = 1
    W[:, dead] = 0
    n = W.shape[1]
    perm = torch.argsort(H.diagonal(), descending=True, stable=True) if act_order else torch.arange(n)
    static = choose_qparams(W, bits, g, symmetric) if act_order else None
    W, H = W[:, perm], H[perm][:, perm]
    Hinv = _inverse_cholesky(H, percdamp)
    codes = torch.zeros(W.shape, dtype=torch.int16)
    scale = torch.zeros(W.shape[0], n // g, dtype=W.dtype)
    zero_point = torch.zeros(W.shape[0], n // g, dtype=torch.int32)
    for i1 in range(0, n, block_size):  # lazy batch updates, Eq. (5)-(6) in [1]
        i2 = min(i1 + block_size, n)
        W1, Err1, Hinv1 = W[:, i1:i2].clone(), torch.zeros_like(W[:, i1:i2]), Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            j = i1 + i
            group = int(perm[j]) // g
            if static is not None:
                scale[:, group], zero_point[:, group] = static[0][:, group], static[1][:, group]
            elif j % g == 0:  # the group's columns as they are now: the block's, and those after it updated so far
                current = torch.cat([W1[:, i:], W[:, i2:] - Err1[:, :i] @ Hinv[i1:j, i2:]], dim=1)[:, :g]
                s, z = choose_qparams(current, bits, None, symmetric)
                scale[:, group], zero_point[:, group] = s[:, 0], z[:, 0]
            w = W1[:, i]
            codes[:, j] = _round(w, scale[:, group], zero_point[:, group], quant_min, quant_max)
            q = (codes[:, j] - zero_point[:, group]).to(W.dtype) * scale[:, group]
            err = (w - q) / Hinv1[i, i]  # Eq. (3) in [1]
            W1[:, i:] -= err[:, None] * Hinv1[i, i:][None, :]
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]  # Eq. (6) in [1]
    codes = codes[:, torch.argsort(perm)]  # undo act-order's permutation
    return QuantizedWeight(codes, scale.to(weight.dtype if weight.dtype == torch.float64 else torch.float32), zero_point, bits, g, symmetric)
