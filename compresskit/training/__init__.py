"""Training-time compression: compress while training, combining the technique packages (chapter 8).

The one package allowed to import the technique packages (pruning, quantization, distillation,
coding): its job is to combine them. Everything trains through :func:`compresskit.train.fit`'s
hooks (``loss_fn``, ``on_step``, ``on_epoch_end``); there is no second training loop.

References
----------
[1] M. Zhu, S. Gupta, "To prune, or not to prune: exploring the efficacy of pruning for model
    compression", 2017, arXiv:1710.01878.
[2] G. Hinton, O. Vinyals, J. Dean, "Distilling the Knowledge in a Neural Network", 2015,
    arXiv:1503.02531.
[3] B. Jacob et al., "Quantization and Training of Neural Networks for Efficient
    Integer-Arithmetic-Only Inference", CVPR 2018, arXiv:1712.05877.
[4] S. Han, H. Mao, W. J. Dally, "Deep Compression", ICLR 2016, arXiv:1510.00149.

* :mod:`~compresskit.training.callbacks`: :func:`fit_compressed` (``fit`` with callbacks in its
  hooks), :class:`PruneWhileTraining` (Zhu & Gupta's cubic schedule), :class:`Distill` (Hinton).
* :mod:`~compresskit.training.qat`: quantization-aware training, :func:`prepare_qat` (fake
  quantization with a straight-through estimator, observed or learned (LSQ) activation ranges),
  :func:`ptq` (post-training quantization in the same form, for a like-for-like comparison),
  :func:`qat_to_float`.
* :mod:`~compresskit.training.export`: :func:`export_onnx` (int8 weights, QuantizeLinear /
  DequantizeLinear nodes) and :func:`onnx_predict` (ONNX Runtime).
"""

from compresskit.training.callbacks import Callback, Distill, PruneWhileTraining, fit_compressed
from compresskit.training.export import export_onnx, onnx_predict
from compresskit.training.qat import (
    ActivationFakeQuantize,
    QATConv2d,
    QATLinear,
    WeightFakeQuantize,
    fake_quantize_ste,
    lsq_fake_quantize,
    prepare_qat,
    ptq,
    qat_to_float,
    weight_qrange,
)
from compresskit.training.dcfile import CompressedFileError, load_compressed, round_to_half, save_compressed
from compresskit.training.deep_compression import CentroidFineTune, Stage, deep_compression, kmeans_1d, share_weights, zero_dead_units
from compresskit.training.ledger import Ledger, LedgerRow, SpeedClaim, ledger

__all__ = [
    "ActivationFakeQuantize",
    "Callback",
    "CentroidFineTune",
    "CompressedFileError",
    "Distill",
    "Ledger",
    "LedgerRow",
    "PruneWhileTraining",
    "QATConv2d",
    "QATLinear",
    "SpeedClaim",
    "Stage",
    "WeightFakeQuantize",
    "deep_compression",
    "export_onnx",
    "fake_quantize_ste",
    "fit_compressed",
    "kmeans_1d",
    "ledger",
    "load_compressed",
    "lsq_fake_quantize",
    "onnx_predict",
    "prepare_qat",
    "ptq",
    "qat_to_float",
    "round_to_half",
    "save_compressed",
    "share_weights",
    "weight_qrange",
    "zero_dead_units",
]
