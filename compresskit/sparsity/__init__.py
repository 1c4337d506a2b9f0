"""Sparsity: zeros in weights, activations and gradients, how to store them, and what they buy.

References
----------
[1] S. Han, H. Mao, W. J. Dally, "Deep Compression", ICLR 2016, arXiv:1510.00149.
[2] H. Hu, R. Peng, Y.-W. Tai, C.-K. Tang, "Network Trimming" (APoZ), 2016, arXiv:1607.03250.
[3] H. Li, A. Kadav, I. Durdanovic, H. Samet, H. P. Graf, "Pruning Filters for Efficient
    ConvNets", ICLR 2017, arXiv:1608.08710.
[4] Z. Liu et al., "Learning Efficient Convolutional Networks through Network Slimming",
    ICCV 2017, arXiv:1708.06519.
[5] P. Molchanov et al., "Pruning Convolutional Neural Networks for Resource Efficient
    Inference", ICLR 2017, arXiv:1611.06440; "Importance Estimation for Neural Network
    Pruning", CVPR 2019, arXiv:1906.10771.
[6] Y. Lin, S. Han, H. Mao, Y. Wang, W. J. Dally, "Deep Gradient Compression", ICLR 2018,
    arXiv:1712.01887.
[7] A. Mishra et al., "Accelerating Sparse Deep Neural Networks" (2:4), 2021, arXiv:2104.08378.

Five small modules, read in this order:

* :mod:`~compresskit.sparsity.unstructured`: global sparsification (random, magnitude, Taylor
  scores; an L1 penalty with a proximal step that makes exact zeros).
* :mod:`~compresskit.sparsity.formats`: COO, CSR, bitmask and relative indices from scratch,
  with their exact byte cost and decoders that refuse corrupt indices.
* :mod:`~compresskit.sparsity.repair`: structure repair (remove disconnected units, fold
  constant units into the next bias, recalibrate BatchNorm).
* :mod:`~compresskit.sparsity.structured`: local sparsification (APoZ, filter L1 norm,
  Network Slimming, Taylor unit scores) ending in a smaller dense model.
* :mod:`~compresskit.sparsity.nm`: N:M (2:4) masks and storage.
* :mod:`~compresskit.sparsity.gradients`: top-k gradient sparsification with error feedback.

Zeros in a dense tensor save nothing by themselves: bytes fall only in a sparse format, and
time only with a kernel that skips zeros (or when whole units are removed).
"""

from compresskit.sparsity.formats import (
    COO,
    CSR,
    Bitmask,
    Relative,
    count_fillers,
    crossover_density,
    decode,
    encode,
    format_bytes,
    from_bitmask,
    from_coo,
    from_csr,
    from_relative,
    nbytes,
    pack_bits,
    to_bitmask,
    to_coo,
    to_csr,
    to_relative,
    unpack_bits,
)
from compresskit.sparsity.gradients import TopKSparsifier, message_bytes, topk_gradient
from compresskit.sparsity.nm import NMPacked, index_bits, is_nm_sparse, nm_bytes, nm_mask, pack_nm, packed_bytes, unpack_nm
from compresskit.sparsity.repair import Chain, constant_outputs, dead_units, find_chains, recalibrate_batchnorm, remove_units, repair
from compresskit.sparsity.structured import (
    apoz,
    bn_scales,
    filter_norms,
    record_activations,
    remove_lowest,
    slimming_loss,
    taylor_unit_scores,
    unit_scores,
    units_to_remove,
)
from compresskit.sparsity.unstructured import (
    MaskKeeper,
    ProximalL1,
    apply_masks,
    check_sparsity,
    global_masks,
    importance_scores,
    magnitude_scores,
    random_scores,
    soft_threshold,
    sparse_weights,
    sparsify,
    taylor_scores,
    total_sparsity,
    weight_gradients,
    weight_sparsity,
)

__all__ = [
    "COO", "CSR", "Bitmask", "Chain", "MaskKeeper", "NMPacked", "ProximalL1", "Relative", "TopKSparsifier",
    "apoz", "apply_masks", "bn_scales", "check_sparsity", "constant_outputs", "count_fillers", "crossover_density",
    "dead_units", "decode", "encode", "filter_norms", "find_chains", "format_bytes", "from_bitmask", "from_coo",
    "from_csr", "from_relative", "global_masks", "importance_scores", "index_bits", "is_nm_sparse",
    "magnitude_scores", "message_bytes", "nbytes", "nm_bytes", "nm_mask", "pack_bits", "pack_nm", "packed_bytes",
    "random_scores", "recalibrate_batchnorm", "record_activations", "remove_lowest", "remove_units", "repair",
    "slimming_loss", "soft_threshold", "sparse_weights", "sparsify", "taylor_scores", "taylor_unit_scores",
    "to_bitmask", "to_coo", "to_csr", "to_relative", "topk_gradient", "total_sparsity", "unit_scores",
    "units_to_remove", "unpack_bits", "unpack_nm", "weight_gradients", "weight_sparsity",
]
