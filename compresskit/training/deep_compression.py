"""Deep Compression: pruning, trained weight sharing and Huffman coding, stage by stage.

Han, Mao and Dally [1] compress a network in three stages, each retraining what it can:

1. **Prune** the small weights and retrain the rest (Han et al. 2015 [2]); here with the cubic
   schedule of Zhu & Gupta [3] (:class:`compresskit.pruning.GradualPruner`).
2. **Share weights**: per layer, k-means clusters the non-zero weights into ``k = 2^bits``
   centroids (Eq. 1 below), initialised evenly between the smallest and largest weight, which
   [1] found best (section 3.2: it keeps the rare large weights). Each weight then stores only
   its cluster index. The pruned zeros are not a cluster: they stay zero and cost no index.

       argmin_C  sum_{i=1..k} sum_{w in c_i} |w - c_i|^2                    # Eq. (2) in [1]

   Then **fine-tune the centroids**: the gradient of a centroid is the sum of the gradients
   of the weights that share it,

       dL/dC_k = sum_{i,j} dL/dW_ij 1(I_ij = k)                             # Eq. (3) in [1]

   :class:`CentroidFineTune` implements exactly that inside :func:`compresskit.train.fit`:
   after every optimizer step it takes the gradient left on each weight by the step's
   backward pass, sums it per cluster (Eq. 3), moves each centroid by plain SGD
   ``C_k <- C_k - lr * dL/dC_k``, and writes the centroids back into the weights (pruned
   positions stay 0). Whatever the optimizer did to the weights is overwritten; the biases,
   which are not shared, train with ``fit``'s optimizer as usual. Cluster assignments stay
   fixed, as in [1].
3. **Huffman code** the cluster indices and the relative-index gaps of the non-zeros
   (:mod:`compresskit.coding`), written to a real file by :func:`compresskit.training.dcfile.save_compressed`.

:func:`deep_compression` runs the stages and reports, for each, the bytes of a real file and the
accuracy of the model read back from that file.

References
----------
[1] S. Han, H. Mao, W. J. Dally, "Deep Compression: Compressing Deep Neural Networks with
    Pruning, Trained Quantization and Huffman Coding", ICLR 2016, arXiv:1510.00149.
[2] S. Han, J. Pool, J. Tran, W. J. Dally, "Learning both Weights and Connections for
    Efficient Neural Networks", NeurIPS 2015, arXiv:1506.02626.
[3] M. Zhu, S. Gupta, "To prune, or not to prune: exploring the efficacy of pruning for model
    compression", 2017, arXiv:1710.01878.
"""

from __future__ import annotations

import numbers
import tempfile
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple

import torch
from torch import nn
from torch.utils.data import DataLoader

from compresskit import measure, pruning
from compresskit._validation import _show, check_choice, check_int, check_module, check_real, check_seed, check_tensor, check_type
from compresskit.models import copy_model
from compresskit.quantization.nonlinear import kmeans_assign
from compresskit.train import fit
from compresskit.training.dcfile import _check_saveable, codebook_of, load_compressed, round_to_half, save_compressed

__all__ = ["CentroidFineTune", "Stage", "deep_compression", "kmeans_1d", "share_weights", "zero_dead_units"]

INITS = ("linear", "density", "random")


def _check_bits(value: object, name: str = "bits") -> int:
    return check_int(name, value, 1, 8)


def _layer_bits(model: nn.Module, bits: int | Mapping[str, int]) -> dict[str, int]:
    """``bits`` for every Linear / Conv2d by name: one int for all, or a mapping naming each layer."""
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not names:
        raise ValueError("`model` must have at least one Linear or Conv2d layer to share weights in; got none")
    if isinstance(bits, Mapping):
        unknown, missing = sorted(set(bits) - set(names)), [n for n in names if n not in bits]
        if unknown or missing:
            raise ValueError(f"`bits` must name every Linear / Conv2d layer {names} once; unknown {unknown}, missing {missing}")
        return {n: _check_bits(bits[n], f"bits[{n!r}]") for n in names}
    if isinstance(bits, numbers.Integral) and not isinstance(bits, bool):
        return dict.fromkeys(names, _check_bits(bits))
    raise TypeError(f"`bits` must be an int in [1, 8] or a mapping from layer name to one; got {type(bits).__name__} {bits!r}")


def _initial_codebook(w: torch.Tensor, k: int, init: str, seed: int) -> torch.Tensor:
    """Starting centroids, sorted: section 3.2 of [1] (linear, density-based, random / Forgy)."""
    if init == "linear":  # evenly spaced over [min, max]
        return torch.linspace(float(w.min()), float(w.max()), k)
    if init == "density":  # evenly spaced in the CDF of the weights
        return torch.quantile(w.double(), torch.linspace(0, 1, k, dtype=torch.float64)).float()
    generator = torch.Generator().manual_seed(seed)  # Forgy: k weights drawn at random
    chosen = w[torch.randperm(len(w), generator=generator)[: min(k, len(w))]]
    return torch.sort(chosen).values


def kmeans_1d(w: torch.Tensor, k: int, *, init: str = "linear", seed: int = 0, n_iter: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    """``(codebook, indices)``: Lloyd's k-means on the 1-D values ``w`` (Eq. 2 in [1]), with
    ``k`` centroids started by ``init``; stops when the centroids stop moving. An empty cluster
    keeps its centroid (scikit-learn's KMeans moves it to a far point instead; with linear
    initialisation on pruned weights the centroids inside the pruned gap around 0 start empty,
    so a layer may end with fewer than ``k`` values in use). ``codebook`` is sorted; ``codebook[indices]`` is the shared ``w``."""
    w = check_tensor("w", w, ndim=1, floating=True, finite=True)
    k = check_int("k", k, 1, 256)
    init = check_choice("init", init, list(INITS))
    w = w.detach().float()
    codebook = _initial_codebook(w, k, init, check_seed("seed", seed))
    for _ in range(check_int("n_iter", n_iter, 0)):
        indices = kmeans_assign(w, codebook)  # nearest centroid
        sums = torch.zeros_like(codebook).index_add_(0, indices, w)
        counts = torch.bincount(indices, minlength=len(codebook)).float()
        updated = torch.where(counts > 0, sums / counts.clamp(min=1), codebook)  # Eq. (2): each centroid the mean of its cluster
        if torch.equal(updated, codebook):
            break
        codebook = torch.sort(updated).values
    return codebook, kmeans_assign(w, codebook)


def share_weights(
    model: nn.Module, bits: int | Mapping[str, int], seed: int = 0, *, init: str = "linear", bias_bits: int | None = None
) -> nn.Module:
    """A copy of ``model`` whose Linear / Conv2d weights take at most ``2^bits`` shared values per layer.

    ``bits`` is one int in [1, 8] for every layer, or a mapping from layer name to bits (the
    paper used 8 for convolutions and 5 for fully connected layers). Only non-zero weights are
    clustered (:func:`kmeans_1d`, ``init`` "linear" as in [1], "density" or "random"; ``seed``
    draws the random initialisation); pruned weights stay exactly zero. With ``bias_bits``
    the non-zero biases of each layer are shared the same way (the paper leaves biases alone;
    in a small MLP they are a large part of the file). Pruning masks are made permanent in
    the copy. The caller's model is left unchanged.
    """
    check_module("model", model)
    layer_bits = _layer_bits(model, bits)
    init = check_choice("init", init, list(INITS))
    seed = check_seed("seed", seed)
    if bias_bits is not None:
        bias_bits = _check_bits(bias_bits, "bias_bits")
    shared = pruning.remove_masks(copy_model(model))
    modules = dict(shared.named_modules())
    for name in layer_bits:
        if int(torch.count_nonzero(modules[name].weight)) == 0:
            raise ValueError(f"`model` layer `{name}` has no non-zero weights: its codebook would be empty")
    with torch.no_grad():
        for name, b in layer_bits.items():
            _share(modules[name].weight, b, init, seed)
            if bias_bits is not None and modules[name].bias is not None and bool(modules[name].bias.any()):
                _share(modules[name].bias, bias_bits, init, seed)
    return shared


def _share(t: torch.Tensor, bits: int, init: str, seed: int) -> None:
    """Replace the non-zeros of ``t`` by their k-means centroids, in place; zeros are not a cluster."""
    nonzero = t != 0
    codebook, indices = kmeans_1d(t[nonzero].float(), 2**bits, init=init, seed=seed)
    t[nonzero] = codebook[indices].to(t.dtype)


def zero_dead_units(model: nn.Module) -> int:
    """Zero the incoming weights and the bias of every hidden unit whose outgoing weights are all zero.

    In a Sequential of Linear layers (with ReLU / Flatten between), a unit of one Linear whose
    column in the next Linear's weight is all zero cannot change the output: its incoming
    weights and bias are stored for nothing. Zeroing them changes no logit (every term they feed
    is multiplied by an exact 0). Works from the last layer back, in place; returns the units zeroed.
    """
    check_module("model", model)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if any(hasattr(m, "weight_orig") for m in linears):
        raise ValueError("`model` still has pruning masks; make them permanent first (pruning.remove_masks)")
    zeroed = 0
    with torch.no_grad():
        for layer, following in reversed(list(zip(linears[:-1], linears[1:]))):
            if following.in_features != layer.out_features:
                raise ValueError(f"`model` Linear layers must follow each other; got {layer.out_features} outputs into {following.in_features} inputs")
            dead = following.weight.abs().sum(dim=0) == 0
            newly = dead & ((layer.weight != 0).any(dim=1) | (layer.bias != 0 if layer.bias is not None else False))
            zeroed += int(newly.sum())
            layer.weight[dead] = 0
            if layer.bias is not None:
                layer.bias[dead] = 0
    return zeroed


class CentroidFineTune:
    """An ``on_step`` callback for :func:`compresskit.train.fit` that trains shared centroids (Eq. 3 in [1]).

    Built from a weight-shared model (at most 256 distinct non-zero values per Linear / Conv2d
    weight, as :func:`share_weights` leaves it), whose cluster assignments it keeps fixed. After
    every optimizer step it sums each weight's gradient into its cluster's centroid (Eq. 3),
    takes an SGD step ``C_k <- C_k - lr * dL/dC_k`` and writes every weight back to its centroid
    (pruned weights back to 0). Biases keep training with fit's own optimizer.

    >>> tune = CentroidFineTune(shared, lr=1e-3)
    >>> fit(shared, loader, epochs=3, on_step=tune)
    """

    def __init__(self, model: nn.Module, lr: float = 1e-3, *, biases: bool = False) -> None:
        check_module("model", model)
        self.lr = check_real("lr", lr, 0.0, low_open=True)
        check_type("biases", biases, bool)
        self.model = model
        self.layers_: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for name, module in model.named_modules():
            if not isinstance(module, (nn.Linear, nn.Conv2d)):
                continue
            if hasattr(module, "weight_orig"):
                raise ValueError(f"`model` layer `{name}` still has a pruning mask; make it permanent first (pruning.remove_masks)")
            tied = [("weight", module.weight)] + ([("bias", module.bias)] if biases and module.bias is not None else [])
            for kind, param in tied:
                codebook, indices, positions = codebook_of(param)
                if not 0 < len(codebook) <= 256:
                    raise ValueError(f"`model` layer `{name}` {kind} must be shared (1 to 256 distinct non-zero values); "
                                     f"got {len(codebook)}: call share_weights first")
                self.layers_.append((param, codebook, indices, positions))
        if not self.layers_:
            raise ValueError("`model` must have at least one Linear or Conv2d layer; got none")

    @property
    def codebooks_(self) -> list[torch.Tensor]:
        """The current centroids of every tied tensor (each weight, then its bias when tied), in model order."""
        return [codebook for _, codebook, _, _ in self.layers_]

    def on_step(self, model: nn.Module, step: int) -> None:
        """Eq. (3): centroid gradients summed per cluster, an SGD step, weights tied again."""
        if model is not self.model:
            raise ValueError("`model` must be the model this CentroidFineTune was built from")
        with torch.no_grad():
            for param, codebook, indices, positions in self.layers_:
                if param.grad is not None:
                    cluster_grad = torch.zeros_like(codebook).index_add_(0, indices, param.grad.flatten()[positions].float())  # Eq. (3)
                    codebook -= self.lr * cluster_grad
                tied = torch.zeros(param.numel(), dtype=codebook.dtype)
                tied[positions] = codebook[indices]
                param.copy_(tied.view_as(param))

    __call__ = on_step


class Stage(NamedTuple):
    """One row of the Deep Compression table: the stage, the bytes of its file, the accuracy read back."""

    stage: str
    bytes: int
    accuracy: float


def _check_loader(loader: object) -> None:
    if isinstance(loader, (torch.Tensor, str, bytes)) or not isinstance(loader, Iterable):
        raise TypeError(f"`train_loader` must be a DataLoader or a list of (x, y) batches; got {type(loader).__name__}")
    try:
        n = len(loader)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"`train_loader` must have a length (the pruning schedule counts its steps): a DataLoader over a "
                        f"map-style dataset or a list of batches; got {type(loader).__name__} without one") from None
    if n == 0:
        raise ValueError(f"`train_loader` must hold at least one batch; got an empty {type(loader).__name__}")


def _check_test_data(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> None:
    """Test data the model can be measured on: checked before any training."""
    check_tensor("X_test", X, floating=True, finite=True)
    check_tensor("y_test", y, ndim=1)
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"`y_test` must hold integer class labels; got dtype {y.dtype}")
    if len(X) != len(y):
        raise ValueError(f"`X_test` and `y_test` must have the same number of samples; got {len(X)} and {len(y)}")
    probe = copy_model(model).eval()
    try:
        with torch.no_grad():
            logits = probe(X[:1])
    except RuntimeError as exc:
        raise ValueError(f"`X_test` must fit the model's input; got shape {tuple(X.shape)}: {str(exc).splitlines()[0]}") from None
    if bool(((y < 0) | (y >= logits.shape[-1])).any()):
        raise ValueError(f"`y_test` must hold labels in [0, {logits.shape[-1] - 1}] (the model's classes); got {_show(y)} "
                         f"with values {int(y.min())} to {int(y.max())}")


def deep_compression(
    model: nn.Module,
    train_loader: DataLoader | Iterable,
    X_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    amount: float = 0.95,
    bits: int | Mapping[str, int] = 5,
    bias_bits: int | None = None,
    epochs: int = 30,
    finetune_epochs: int = 3,
    lr: float = 1e-3,
    centroid_lr: float = 1e-3,
    half: bool = True,
    seed: int = 0,
    directory: str | Path | None = None,
) -> list[Stage]:
    """The Deep Compression pipeline on a trained ``model`` (an MLP), one :class:`Stage` per file written.

    1. "dense fp32": ``torch.save(model.state_dict())``.
    2. "pruned": ``amount`` of the weights pruned by magnitude (global ranking) on the cubic
       schedule while training ``epochs`` epochs (reaching ``amount`` at 70% of the steps), then
       written with raw non-zero values and fixed-width relative indices (Eq. 2 of dcfile).
    3. "+ weight sharing": the units that feed nothing zeroed (:func:`zero_dead_units`, which
       changes no logit), :func:`share_weights` with ``bits`` (and ``bias_bits``: biases
       shared too), then ``finetune_epochs`` of :class:`CentroidFineTune` (``centroid_lr``,
       shared biases tied too); with ``half`` the codebooks and biases are rounded to fp16 in
       memory; written with fixed-width indices and gaps.
    4. "+ Huffman coding": the same model, both streams Huffman coded.

    The defaults follow the paper (5 bits, biases left alone); on the digits MLP (64-256-256-10)
    ``bits=4, bias_bits=4`` makes the file about 67x smaller than the fp32 one within 1 point
    (seeds 0-2, ``benchmarks/bench_training.py``), the defaults 55.8x to 57.3x.

    Each accuracy is that of the model read back from its file. Training uses ``fit`` with
    ``lr`` and ``seed``. Files go to ``directory`` (kept) or a temporary folder (deleted).
    The caller's model is left unchanged.
    """
    check_module("model", model)
    _check_saveable(pruning.remove_masks(copy_model(model)))  # the file format's rule, checked before 30 epochs of training
    _check_loader(train_loader)
    _check_test_data(model, X_test, y_test)
    check_real("lr", lr, 0.0, low_open=True)
    amount = check_real("amount", amount, 0.0, 1.0, high_open=True)
    _layer_bits(model, bits)
    if bias_bits is not None:
        _check_bits(bias_bits, "bias_bits")
    epochs, finetune_epochs = check_int("epochs", epochs, 1), check_int("finetune_epochs", finetune_epochs, 0)
    check_real("centroid_lr", centroid_lr, 0.0, low_open=True)
    check_type("half", half, bool)
    seed = check_seed("seed", seed)
    if directory is not None:
        check_type("directory", directory, (str, Path), "a str or pathlib.Path")
        if Path(directory).exists() and not Path(directory).is_dir():
            raise ValueError(f"`directory` must be a folder (it is created if missing); got {str(directory)!r}, which is not a folder")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(directory) if directory is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        return _stages(model, train_loader, X_test, y_test, folder, amount=amount, bits=bits, epochs=epochs,
                       bias_bits=bias_bits, finetune_epochs=finetune_epochs, lr=lr, centroid_lr=centroid_lr, half=half, seed=seed)


def _stages(model: nn.Module, loader: Iterable, X: torch.Tensor, y: torch.Tensor, folder: Path, *, amount: float,
            bits: int | Mapping[str, int], bias_bits: int | None, epochs: int, finetune_epochs: int, lr: float, centroid_lr: float, half: bool, seed: int) -> list[Stage]:
    dense_path = folder / "1_dense.pt"
    torch.save(model.state_dict(), dense_path)
    reloaded = copy_model(model)
    reloaded.load_state_dict(torch.load(dense_path, weights_only=True))
    rows = [Stage("dense fp32", dense_path.stat().st_size, measure.accuracy(reloaded, X, y))]

    pruned = copy_model(model)
    steps = epochs * len(loader)  # type: ignore[arg-type]
    pruner = pruning.GradualPruner(pruning.prunable_parameters(pruned), amount, 0, max(1, int(0.7 * steps)), frequency=5)
    fit(pruned, loader, epochs=epochs, lr=lr, seed=seed, on_step=pruner, progress=False)
    pruning.remove_masks(pruned)
    rows.append(_written(Stage, "pruned", pruned, folder / "2_pruned.ckdc", "fixed", X, y))

    zero_dead_units(pruned)
    shared = share_weights(pruned, bits, seed, bias_bits=bias_bits)
    if finetune_epochs:
        tune = CentroidFineTune(shared, centroid_lr, biases=bias_bits is not None)
        fit(shared, loader, epochs=finetune_epochs, lr=lr, seed=seed, on_step=tune, progress=False)
    if half:
        round_to_half(shared)
    rows.append(_written(Stage, "+ weight sharing", shared, folder / "3_shared.ckdc", "fixed", X, y))
    rows.append(_written(Stage, "+ Huffman coding", shared, folder / "4_huffman.ckdc", "huffman", X, y))
    return rows


def _written(stage: type[Stage], name: str, model: nn.Module, path: Path, coding: str, X: torch.Tensor, y: torch.Tensor) -> Stage:
    """Write ``model`` to ``path`` and measure the accuracy of what reads back."""
    size = save_compressed(model, path, coding=coding)
    return stage(name, size, measure.accuracy(load_compressed(path), X, y))
