"""Non-linear quantization: k-means weight sharing and power-of-two (logarithmic) levels.

Linear quantization spaces its levels evenly. Weights are not spread evenly (most sit near 0),
so levels placed where the weights are can do better at the same number of bits.

* k-means weight sharing (Deep Compression [1]): cluster a layer's weights into ``k = 2^bits``
  centroids, store the *codebook* (``k`` floats) and, per weight, the *index* of its centroid
  (``bits`` bits). Centroids start evenly spaced between min and max ("linear
  initialisation", which [1] found best because it keeps the rare large weights), then
  Lloyd's iterations lower the within-cluster squared error

      argmin_C  sum_j sum_{w in c_j} |w - c_j|^2                            # Eq. (2) in [1]

  by alternating ``index_i = argmin_j |w_i - c_j|`` and ``c_j = mean{w_i : index_i = j}``.

* power-of-two / logarithmic quantization [2]: each weight becomes ``0`` or
  ``sign(w) * 2^e``, with ``e`` the rounded ``log2 |w|`` in a window of ``2^(bits-1) - 1``
  exponents below the largest. A multiplication by ``2^e`` is a bit shift in hardware.

      e = clip(round(log2 |w|), e_max - 2^(bits-1) + 2, e_max)              # section 3 of [2]

References
----------
[1] S. Han, H. Mao, W. J. Dally, "Deep Compression: Compressing Deep Neural Networks with
    Pruning, Trained Quantization and Huffman Coding", ICLR 2016, arXiv:1510.00149.
[2] D. Miyashita, E. H. Lee, B. Murmann, "Convolutional Neural Networks using Logarithmic
    Data Representation", 2016, arXiv:1603.01025.
"""

from __future__ import annotations

import torch

from compresskit._validation import check_int, check_tensor
from compresskit.quantization.linear import check_bits, storage_dtype


def kmeans_quantize(weight: torch.Tensor, bits: int = 4, n_iter: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """``(codebook, indices)``: k-means with ``2^bits`` centroids, linearly initialised.

    ``codebook`` is float32 of shape (2^bits,), sorted; ``indices`` has ``weight``'s shape and the
    smallest unsigned dtype that holds them. ``codebook[indices]`` is the quantized weight.
    """
    weight = check_tensor("weight", weight, floating=True, finite=True)
    bits = check_bits(bits)
    n_iter = check_int("n_iter", n_iter, 0)
    w = weight.detach().float().flatten()
    codebook = torch.linspace(float(w.min()), float(w.max()), 2**bits)  # linear initialisation [1]
    for _ in range(n_iter):
        indices = kmeans_assign(w, codebook)
        sums = torch.zeros_like(codebook).index_add_(0, indices, w)
        counts = torch.bincount(indices, minlength=len(codebook)).float()
        updated = torch.where(counts > 0, sums / counts.clamp(min=1), codebook)  # Lloyd update for Eq. (2) in [1]
        if torch.equal(updated, codebook):
            break
        codebook = updated
    indices = kmeans_assign(w, codebook)
    return codebook, indices.reshape(weight.shape).to(storage_dtype(0, 2**bits - 1))


def kmeans_assign(w: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid of a sorted 1-D ``codebook`` for every entry of ``w``.

    In 1-D the nearest centroid is found by comparing with the midpoints between neighbours.
    """
    midpoints = (codebook[1:] + codebook[:-1]) / 2
    return torch.bucketize(w, midpoints)  # Lloyd assignment for Eq. (2) in [1]


def kmeans_dequantize(codebook: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """The shared weights ``codebook[indices]``."""
    codebook = check_tensor("codebook", codebook, ndim=1, floating=True, finite=True)
    indices = check_tensor("indices", indices, nonempty=False)
    if indices.is_floating_point():
        raise TypeError(f"`indices` must be an integer tensor; got dtype {indices.dtype}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= len(codebook)):
        raise ValueError(f"`indices` must be in [0, {len(codebook) - 1}]; got values in [{int(indices.min())}, {int(indices.max())}]")
    return codebook[indices.long()]


def power_of_two_encode(x: torch.Tensor, bits: int = 4) -> tuple[torch.Tensor, int]:
    """``(codes, e_max)``: signed codes in ``[-(2^(bits-1) - 1), 2^(bits-1) - 1]``.

    Code 0 is the value 0; code ``+-k`` (k >= 1) is ``+-2^(e_max - k + 1)``. ``e_max`` is the
    rounded log2 of the largest magnitude. Needs ``bits >= 2`` (a sign and a level).
    """
    x = check_tensor("x", x, floating=True, finite=True)
    bits = check_int("bits", bits, 2, 16)
    levels = 2 ** (bits - 1) - 1  # exponents available besides zero
    largest = float(x.abs().max())
    if largest == 0:
        return torch.zeros_like(x, dtype=torch.int16 if bits > 8 else torch.int8), 0
    e_max = int(torch.round(torch.log2(torch.tensor(largest))))
    e_min = e_max - levels + 1
    e = torch.round(torch.log2(x.abs().float().clamp(min=1e-45)))
    k = (e_max - torch.clamp(e, max=e_max) + 1).long()  # 1 for the largest level
    k = torch.where(e < e_min, torch.zeros_like(k), k)  # below the window: 0 (section 3 of [2])
    codes = torch.sign(x).long() * k
    return codes.to(torch.int16 if bits > 8 else torch.int8), e_max


def power_of_two_decode(codes: torch.Tensor, e_max: int) -> torch.Tensor:
    """Float32 values of :func:`power_of_two_encode`'s codes."""
    codes = check_tensor("codes", codes, nonempty=False)
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise TypeError(f"`codes` must be an integer tensor (power_of_two_encode's codes); got dtype {codes.dtype}")
    e_max = check_int("e_max", e_max, -160, 127)
    k = codes.abs().float()
    value = torch.sign(codes.float()) * torch.exp2(e_max - k + 1)
    return torch.where(codes == 0, torch.zeros_like(value), value)


def power_of_two_quantize(x: torch.Tensor, bits: int = 4) -> torch.Tensor:
    """Each value of ``x`` replaced by 0 or the nearest (in log scale) signed power of two."""
    codes, e_max = power_of_two_encode(x, bits)
    return power_of_two_decode(codes, e_max)
