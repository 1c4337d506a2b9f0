"""The course's ledger: every technique of the course applied to the same digits MLP, promise against reality.

Learners ask why a "compressed" model is often neither smaller nor faster. The ledger answers
on their own machine: it applies each chapter's technique to one trained MLP and, for each,
sets side by side

* the **promise**: the compression ratio that counting parameters and bits gives, Eq. (1);
* the **reality**: the bytes of a real file written to disk (``torch.save`` of a state dict,
  the integer MLP, a CSR file, an N:M file, packed 4-bit codes, the Deep Compression file, an
  ONNX file), the ratio on disk, Eq. (2), the test accuracy, and the latency measured here
  (:func:`compresskit.measure.latency_ratio`, the model and the dense baseline timed alternately);
* one line on **the gap** between the two (masks stored beside the weights, zeros stored
  densely, the cost of sparse indices, int8 kernels present or not, metadata, headers).

Eq. (1), promised ratio::

    promised = 32 * P_dense / sum_i b_i * n_i

where ``P_dense`` counts the baseline's parameters and ``n_i`` of the compressed model's values
are stored at ``b_i`` bits (non-zero values only, where zeros are the point).

Eq. (2), ratio on disk::

    on_disk = bytes(file of the dense model) / bytes(file of the compressed model)

Bytes are the same on every machine, so a chapter may assert them; latencies depend on the
machine, so :meth:`Ledger.judge` hands each row's speed claim to a judge (the course's
``compresskit.course.verdict.judge``) and never asserts one.

References
----------
[1] S. Han, J. Pool, J. Tran, W. J. Dally, "Learning both Weights and Connections for Efficient
    Neural Networks", NeurIPS 2015, arXiv:1506.02626.
[2] B. Jacob et al., "Quantization and Training of Neural Networks for Efficient
    Integer-Arithmetic-Only Inference", CVPR 2018, arXiv:1712.05877.
[3] A. Mishra et al., "Accelerating Sparse Deep Neural Networks", 2021, arXiv:2104.08378.
[4] C. Buciluǎ, R. Caruana, A. Niculescu-Mizil, "Model Compression", KDD 2006.
[5] G. Hinton, O. Vinyals, J. Dean, "Distilling the Knowledge in a Neural Network", 2015,
    arXiv:1503.02531.
[6] S. Han, H. Mao, W. J. Dally, "Deep Compression: Compressing Deep Neural Networks with Pruning,
    Trained Quantization and Huffman Coding", ICLR 2016, arXiv:1510.00149.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn
from torch.nn.utils import prune

from compresskit import measure, models
from compresskit._validation import check_int, check_module, check_seed, check_type
from compresskit.data import NUM_CLASSES, DigitsSplit, calibration_batch, make_loader
from compresskit.distillation import distill
from compresskit.pruning import L1Unstructured, global_unstructured, prunable_parameters, prune_units, remove_masks
from compresskit.quantization import IntegerMLP, pack_bits, quantize
from compresskit.sparsity import MaskKeeper, apply_masks, nm_mask, pack_nm, sparse_weights, to_csr
from compresskit.train import fit
from compresskit.training.dcfile import load_compressed, round_to_half, save_compressed
from compresskit.training.deep_compression import CentroidFineTune, share_weights, zero_dead_units
from compresskit.training.qat import QATLinear, prepare_qat, qat_to_float

__all__ = ["Ledger", "LedgerRow", "SpeedClaim", "ledger"]

AMOUNT = 0.9  # the unstructured sparsity of chapters 2 and 4
UNITS = 0.5  # the share of hidden units chapter 2 removes
STUDENT_HIDDEN = (32,)  # chapter 6's student, 64-32-10
STUDENT_EPOCHS = 15  # distillation epochs (chapter 6 trains 60)
BATCH, LR = 64, 3e-3  # fine-tuning and ensemble members: a few epochs, a step 3x fit's default
QAT_BITS = 4  # chapter 8: quantization-aware training to 4-bit weights
SHARED_BITS = 5  # chapter 8: Deep Compression's weight sharing, 32 shared values per layer (the paper's 5 bits for fully connected layers)
MIN_ACCURACY = 0.5  # a model below this on the test digits has not been trained


@dataclass(frozen=True)
class SpeedClaim:
    """What a row claims about speed: ``value`` (dense time / this row's time) above ``above``
    and/or below ``below``; ``why`` is what would make it fail; ``hardware`` the machine facts
    worth showing then (topics of ``compresskit.course.verdict.machine_notes``)."""

    claim: str
    value: float
    above: float | None
    below: float | None
    why: str
    hardware: tuple[str, ...]


@dataclass(frozen=True)
class LedgerRow:
    """One technique applied to the MLP. ``None`` where a number does not exist (chapter 7's row).

    ``promised_ratio`` is Eq. (1); ``file_bytes`` the size of the real file on disk and
    ``payload_bytes`` the raw bytes of the arrays inside it (the rest is the file format's
    headers); ``disk_ratio`` is Eq. (2); ``speedup`` is dense time / this row's time at the
    ledger's batch size (timed alternately, first quartiles); ``why`` explains the gap;
    ``model`` is what was measured (a module, or a function of a numpy batch for ONNX Runtime).
    """

    key: str
    chapter: int
    technique: str
    file: str
    promised_ratio: float | None
    file_bytes: int | None
    payload_bytes: int | None
    disk_ratio: float | None
    accuracy: float | None
    latency: measure.Latency | None
    speedup: float | None
    why: str
    claim: SpeedClaim | None = None
    model: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Ledger:
    """The rows, in the course's order, and the batch size the latencies were measured at."""

    rows: tuple[LedgerRow, ...]
    batch_size: int

    def __getitem__(self, key: str) -> LedgerRow:
        for row in self.rows:
            if row.key == key:
                return row
        raise KeyError(f"no ledger row {key!r}; the rows are {[r.key for r in self.rows]}")

    def keys(self) -> list[str]:
        return [row.key for row in self.rows]

    def table(self, *, why: bool = True) -> str:
        """A markdown table, then (``why=True``) one line per row on the gap between promise and disk."""
        head = ["ch", "technique", "promised", "file bytes", "on disk", "accuracy", f"ms (batch {self.batch_size})", "speed-up"]
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        for r in self.rows:
            cells = [str(r.chapter), r.technique, _ratio(r.promised_ratio), "n/a" if r.file_bytes is None else f"{r.file_bytes:,}",
                     _ratio(r.disk_ratio), "n/a" if r.accuracy is None else f"{r.accuracy:.1%}",
                     "n/a" if r.latency is None else f"{r.latency.median * 1e3:.3f}", _ratio(r.speedup)]
            lines.append("| " + " | ".join(cells) + " |")
        if why:
            lines.append("")
            lines += [f"- {r.technique}: {r.why}" for r in self.rows]
        return "\n".join(lines)

    def claims(self) -> list[SpeedClaim]:
        """Every row's speed claim, to be judged on this machine, never asserted."""
        return [row.claim for row in self.rows if row.claim is not None]

    def judge(self, judge: Callable[..., Any]) -> list[Any]:
        """Call ``judge(claim, value, above=, below=, why=, hardware=)`` on every claim (pass
        ``compresskit.course.verdict.judge``) and return what it returns, in row order."""
        if not callable(judge):
            raise TypeError(f"`judge` must be callable, e.g. compresskit.course.verdict.judge; got {type(judge).__name__}")
        return [judge(c.claim, c.value, above=c.above, below=c.below, why=c.why, hardware=c.hardware) for c in self.claims()]


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


# --- checks -----------------------------------------------------------------------------------


def _check_inputs(model: nn.Module, split: DigitsSplit) -> list[nn.Linear]:
    """The model's Linear layers, after checking it is a trained, dense digits MLP that fits ``split``."""
    check_module("model", model)
    check_type("split", split, DigitsSplit, "a DigitsSplit (compresskit.data.load_digits_split())")
    if not isinstance(model, nn.Sequential) or not all(isinstance(m, (nn.Flatten, nn.Linear, nn.ReLU)) for m in model):
        raise TypeError(f"`model` must be an MLP of Flatten, Linear and ReLU layers (compresskit.models.mlp); got {type(model).__name__}: "
                        + ", ".join(type(m).__name__ for m in model.children()))
    if prune.is_pruned(model):
        raise ValueError("`model` must be the dense baseline, without pruning masks; got a pruned model "
                         "(the ledger prunes a copy itself; call compresskit.pruning.remove_masks on a copy to compare)")
    linears = [m for m in model if isinstance(m, nn.Linear)]
    if len(linears) < 2:
        raise ValueError(f"`model` must have at least one hidden layer (units to remove, a student to be smaller); got {len(linears)} Linear layer(s)")
    for name, p in model.named_parameters():
        if not bool(torch.isfinite(p).all()):
            raise ValueError(f"`model` must have finite parameters; `{name}` has NaN or inf values")
    features = split.X_test.shape[1]
    if linears[0].in_features != features or linears[-1].out_features != NUM_CLASSES:
        raise ValueError(f"`model` must map the split's {features} pixels to {NUM_CLASSES} classes; got "
                         f"{linears[0].in_features} -> {linears[-1].out_features}")
    for i, m in enumerate(linears):
        if m.in_features % 4:
            raise ValueError(f"every Linear layer's in_features must be divisible by 4 (2:4 sparsity); layer {i} has {m.in_features}")
    return linears


def _check_trained(accuracy: float, n_test: int) -> None:
    if accuracy < MIN_ACCURACY:
        raise ValueError(f"`model` must be trained on the digits: its test accuracy must be at least {MIN_ACCURACY:.0%}; got "
                         f"{accuracy:.1%} on {n_test} test digits (chance is {1 / NUM_CLASSES:.0%}); train it with compresskit.train.fit first")


# --- files and counts ---------------------------------------------------------------------------


def _save(folder: Path, key: str, tensors: Mapping[str, torch.Tensor]) -> tuple[int, int]:
    """``torch.save`` ``tensors`` to ``folder/key/model.pt``: (bytes of the file, raw bytes of the tensors).

    Every file has the same name, because ``torch.save`` writes it into the zip archive's
    folder name: equal state dicts then give files of equal size.
    """
    path = folder / key / "model.pt"
    path.parent.mkdir()
    torch.save(tensors, path)  # a state dict keeps its OrderedDict and _metadata, as torch.save(model.state_dict()) does
    payload = sum(t.numel() * t.element_size() for t in tensors.values())
    return path.stat().st_size, payload


def _write_bytes(folder: Path, key: str, name: str, blob: bytes) -> int:
    path = folder / key / name
    path.parent.mkdir()
    path.write_bytes(blob)
    return path.stat().st_size


def _onnx_payload(blob: bytes) -> int:
    """Raw bytes of an ONNX model's initializers (its weights, scales and zero points)."""
    import onnx
    from onnx import numpy_helper

    return sum(numpy_helper.to_array(t).nbytes for t in onnx.load_from_string(blob).graph.initializer)


def _promised(dense_params: int, stored_bits: float) -> float:
    return 32 * dense_params / stored_bits  # Eq. (1)


def _csr_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Each Linear layer in CSR (int32 indices, float32 values), its bias, and its shape (int64)."""
    out = {}
    for name, m in model.named_children():
        if isinstance(m, nn.Linear):
            csr = to_csr(m.weight.detach())
            out |= {f"{name}.crow_indices": csr.crow_indices, f"{name}.col_indices": csr.col_indices,
                    f"{name}.values": csr.values, f"{name}.bias": m.bias.detach().clone(),
                    f"{name}.shape": torch.tensor(csr.shape, dtype=torch.int64)}
    return out


def _nm_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Each Linear layer in 2:4 storage (kept values and 2-bit positions), its bias, and its shape."""
    out = {}
    for name, m in model.named_children():
        if isinstance(m, nn.Linear):
            packed = pack_nm(m.weight.detach(), 2, 4)
            out |= {f"{name}.values": packed.values, f"{name}.indices": packed.indices, f"{name}.bias": m.bias.detach().clone(),
                    f"{name}.shape": torch.tensor(packed.shape, dtype=torch.int64)}
    return out


class _CSRMLP(nn.Module):
    """The MLP run from CSR tensors with ``torch.sparse.mm``: a kernel that skips the zeros.

    The CSR weights and the biases are buffers, so ``.to()`` moves them."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        linears = [m for m in model if isinstance(m, nn.Linear)]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            for i, m in enumerate(linears):
                self.register_buffer(f"weight{i}", m.weight.detach().to_sparse_csr())
                self.register_buffer(f"bias{i}", m.bias.detach()[:, None].clone())
        self.n_layers = len(linears)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1).T.contiguous()  # (features, B): CSR times dense columns
        for i in range(self.n_layers):
            h = torch.sparse.mm(getattr(self, f"weight{i}"), h) + getattr(self, f"bias{i}")
            h = torch.relu(h) if i < self.n_layers - 1 else h
        return h.T


class _Ensemble(nn.Module):
    """The average of the members' class probabilities; returns its log (so arg-max is the vote)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(x), dim=1) for m in self.members]).mean(dim=0)
        return probs.clamp_min(1e-12).log()


# --- the ledger ------------------------------------------------------------------------------------


class _Builder:
    """Shared state while the rows are built: the split's tensors, the folder, the timing batch."""

    def __init__(self, model: nn.Module, split: DigitsSplit, folder: Path, *, seed: int, epochs: int, batch_size: int, repeats: int) -> None:
        self.split, self.folder, self.seed, self.epochs, self.repeats = split, folder, seed, epochs, repeats
        self.X_test, self.y_test = split.tensors("test")
        self.X_train, self.y_train = split.tensors("train")
        self.x = self.X_test[: min(batch_size, len(self.X_test))]
        self.dense = models.copy_model(model).eval()  # the caller's model is never timed, trained or put in eval mode
        self.dense_params = measure.count_parameters(self.dense)
        self.dense_bytes = 0
        self.rows: list[LedgerRow] = []

    def loader(self, offset: int = 0):
        return make_loader(self.X_train, self.y_train, BATCH, shuffle=True, seed=self.seed + offset)

    def finetune(self, net: nn.Module, **kwargs: Any) -> nn.Module:
        if self.epochs:
            fit(net, self.loader(), epochs=self.epochs, lr=LR, seed=self.seed, progress=False, **kwargs)
        return net.eval()

    def add(self, key: str, chapter: int, technique: str, file: str, net: Callable[..., Any], promised_bits: float,
            sizes: tuple[int, int], why: Callable[[dict[str, float]], str], claim: tuple | None = None,
            args_b: tuple | None = None, accuracy: float | None = None) -> None:
        """Time ``net`` against the dense model, measure its accuracy (unless given), and add the row."""
        file_bytes, payload = sizes
        if key == "dense":
            self.dense_bytes = file_bytes
        timing = measure.latency_ratio(self.dense, net, self.x, args_b=args_b, warmup=3, repeats=self.repeats)
        speedup = timing.q1_ratio
        accuracy = measure.accuracy(net, self.X_test, self.y_test) if accuracy is None else accuracy
        promised, disk = _promised(self.dense_params, promised_bits), self.dense_bytes / file_bytes
        numbers = dict(promised=promised, disk=disk, file=file_bytes, payload=payload, dense=self.dense_bytes, speedup=speedup,
                       accuracy=accuracy, dense_accuracy=self.rows[0].accuracy if self.rows else accuracy)
        speed = None
        if claim is not None:
            text, above, below, fails, hardware = claim
            speed = SpeedClaim(text, speedup, above, below, fails, hardware)
        self.rows.append(LedgerRow(key, chapter, technique, file, promised, file_bytes, payload, disk, accuracy,
                                   timing.b, speedup, why(numbers), speed, net))

    def note(self, key: str, chapter: int, technique: str, why: str) -> None:
        self.rows.append(LedgerRow(key, chapter, technique, "none", None, None, None, None, None, None, None, why))


def ledger(
    model: nn.Module,
    split: DigitsSplit,
    *,
    seed: int = 0,
    epochs: int = 2,
    n_members: int = 3,
    member_epochs: int = 5,
    batch_size: int = 256,
    repeats: int = 15,
    onnx: bool = False,
) -> Ledger:
    """Apply every technique of the course to a copy of ``model`` (a trained digits MLP) and
    measure promise against reality, one :class:`LedgerRow` each.

    ``epochs`` of fine-tuning follow pruning, 2:4 masking, QAT and weight sharing; the ensemble
    adds ``n_members - 1`` MLPs of ``model``'s shape trained ``member_epochs`` each from seeds
    ``seed + 1, ...``; the student (64-32-10) is distilled from the ensemble. Latencies are at
    ``batch_size`` test digits, ``repeats`` alternate calls. ``onnx=True`` adds ONNX Runtime's
    int8 model (its export alone takes seconds). With the defaults the whole ledger costs about
    as much as two or three 20-epoch trainings of the MLP. ``model`` is not changed; every file
    goes to a temporary folder, then away.
    """
    linears = _check_inputs(model, split)
    seed = check_seed("seed", seed)
    epochs = check_int("epochs", epochs, 0)
    n_members = check_int("n_members", n_members, 2)
    member_epochs = check_int("member_epochs", member_epochs, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    repeats = check_int("repeats", repeats, 1)
    check_type("onnx", onnx, bool)
    # Building layers (QAT's, the decoder's) draws initial weights that are then overwritten: from a
    # seeded, forked generator, so the caller's global random state is left as it was.
    with tempfile.TemporaryDirectory(prefix="ledger-") as tmp, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        b = _Builder(model, split, Path(tmp), seed=seed, epochs=epochs, batch_size=batch_size, repeats=repeats)
        _check_trained(measure.accuracy(b.dense, b.X_test, b.y_test), len(b.y_test))
        hidden = tuple(m.out_features for m in linears[:-1])
        _dense_row(b)
        masked = _pruning_rows(b)
        _quantization_rows(b, onnx)
        _sparsity_rows(b, masked)
        ensemble = _ensemble_row(b, hidden, n_members, member_epochs)
        _distillation_row(b, ensemble)
        b.note("superres", 7, "super-resolution", "does not apply: it rebuilds images from smaller ones (it compresses data, not a "
               "classifier); chapter 7 measures it on photographs, and there is no digits-MLP row to fill in")
        _qat_row(b)
        _deep_compression_row(b, masked)
    return Ledger(tuple(b.rows), len(b.x))


def _dense_row(b: _Builder) -> None:
    b.add("dense", 1, "dense float32 (baseline)", "torch.save(state_dict)", b.dense, 32 * b.dense_params,
          _save(b.folder, "dense", b.dense.state_dict()),
          lambda n: f"the reference: 4 bytes per parameter plus {n['file'] - n['payload']:,} bytes of the file format's headers")


def _pruning_rows(b: _Builder) -> nn.Module:
    """Chapter 2: 90% of the weights masked (global magnitude, fine-tuned), then made permanent; half the units cut out."""
    masked = models.copy_model(b.dense)
    global_unstructured(prunable_parameters(masked), L1Unstructured, amount=AMOUNT)
    b.finetune(masked)
    masked(b.x)  # one forward pass recomputes weight = weight_orig * weight_mask after the last optimizer step
    nonzero_bits = 32 * measure.count_nonzero(masked)
    b.add("masked", 2, f"pruned {AMOUNT:.0%}, masks kept", "torch.save(state_dict): weight_orig + weight_mask", masked, nonzero_bits,
          _save(b.folder, "masked", masked.state_dict()),
          lambda n: f"torch's pruning stores weight_orig AND weight_mask, two dense float32 tensors per weight: "
                    f"{n['disk']:.2f}x, bigger than dense, and the forward pass still multiplies every zero",
          ("a masked MLP is no faster than the dense one (dense / masked time)", None, 1.25,
           "both do the same dense multiply (plus the mask's); a ratio above 1.25 means other programs slowed the dense calls: run it again", ("threads",)))
    removed = remove_masks(models.copy_model(masked)).eval()
    b.add("masks_removed", 2, f"pruned {AMOUNT:.0%}, masks removed", "torch.save(state_dict) with zeros", removed, nonzero_bits,
          _save(b.folder, "masks_removed", removed.state_dict()),
          lambda n: f"the zeros are stored densely, 4 bytes each: {n['disk']:.2f}x on disk for a promised {n['promised']:.1f}x, "
                    "and a dense kernel multiplies them as fast as any other number",
          ("zeros stored densely are no faster (dense / pruned time)", None, 1.25,
           "the same dense multiply on the same shapes; a ratio above 1.25 means other load slowed the dense calls: run it again", ("threads",)))
    units = b.finetune(prune_units(b.dense, UNITS, n=2))
    macs = measure.count_macs(b.dense, b.x) / measure.count_macs(units, b.x)
    b.add("units", 2, f"{UNITS:.0%} of hidden units removed", "torch.save(state_dict), smaller matrices", units,
          32 * measure.count_parameters(units), _save(b.folder, "units", units.state_dict()),
          lambda n: f"a smaller dense model: the promise holds on disk ({n['disk']:.2f}x) and it does {macs:.1f}x fewer "
                    "multiply-adds with the same fast dense kernels; the gap is the file's headers",
          ("removing half the hidden units makes the MLP faster (dense / small time)", 1.5, None,
           f"the small model does {macs:.1f}x fewer MACs, but on this machine fixed costs per call or memory traffic take most of the time",
           ("simd", "cache", "threads")))
    return masked


def _quantization_rows(b: _Builder, onnx: bool) -> None:
    """Chapter 3: the integer-only MLP (int8 weights, int32 biases, per-channel requantization); ONNX Runtime's int8 if asked."""
    calibration = calibration_batch(256, seed=b.seed)
    int_model = IntegerMLP.from_float(b.dense, calibration).eval()
    sizes = _save(b.folder, "int8", int_model.state_dict())
    channels = sum(layer.weight.shape[0] for layer in int_model.layers)
    b.add("int8", 3, "int8, integer-only MLP", "torch.save(IntegerMLP.state_dict())", int_model, 8 * b.dense_params, sizes,
          lambda n: f"int8 weights are 1 byte, but each of the {channels} output channels keeps a float32 scale, an int32 bias and "
                    f"two int64 requantization numbers: {n['disk']:.2f}x, not 4x; PyTorch has no int8 matrix multiply for us, so "
                    "the integers are multiplied in int32, slower than float32",
          ("the integer-only MLP in PyTorch is slower than float32 (dense / int time)", None, 1.0,
           "int32 matrix products as fast as float32 ones on this CPU", ("simd", "int8")))
    if onnx:
        from compresskit.quantization import ort

        blob = ort.quantize_onnx(ort.export_onnx(b.dense, b.x[:1]), calibration)
        session = ort.ort_session(blob)
        accuracy = float((ort.ort_predict(session, b.X_test) == b.y_test).double().mean())
        sizes = (_write_bytes(b.folder, "onnx_int8", "model.onnx", blob), _onnx_payload(blob))
        b.add("onnx_int8", 3, "int8, ONNX Runtime", "int8 ONNX file (QDQ)", lambda a: ort.ort_logits(session, a), 8 * b.dense_params,
              sizes,
              lambda n: f"int8 weights plus per-channel scales, zero points and the graph: {n['disk']:.2f}x on disk; "
                        "faster only where the CPU has int8 dot-product instructions (VNNI, dotprod)",
              ("ONNX Runtime int8 is faster than torch float32 (dense / int8 time)", 1.0, None,
               "without int8 dot-product instructions (VNNI on x86, dotprod on ARM) int8 products are built from 16-bit "
               "multiply-adds and are no faster than float32", ("int8", "simd", "onnxruntime")),
              args_b=(b.x.numpy(),), accuracy=accuracy)


def _sparsity_rows(b: _Builder, masked: nn.Module) -> None:
    """Chapter 4: chapter 2's 90%-sparse weights in CSR (a sparse kernel), and 2:4 sparsity (fine-tuned, packed)."""
    sparse = remove_masks(models.copy_model(masked)).eval()
    tensors = _csr_tensors(sparse)
    nnz = measure.count_nonzero(sparse) - sum(m.bias.numel() for m in sparse if isinstance(m, nn.Linear))
    b.add("csr", 4, f"pruned {AMOUNT:.0%}, CSR", "torch.save of CSR arrays (int32 indices)", _CSRMLP(sparse),
          32 * measure.count_nonzero(sparse), _save(b.folder, "csr", tensors),
          lambda n: f"each of the {nnz:,} non-zeros carries a 4-byte column index beside its 4-byte value, plus a row pointer "
                    f"per row: {n['disk']:.2f}x on disk for a promised {n['promised']:.1f}x; torch.sparse.mm skips the zeros "
                    "but reads indices, which pays only at high sparsity",
          ("torch's CSR kernel at 90% sparsity is faster than the dense one (dense / CSR time)", 1.0, None,
           "dense kernels use every SIMD lane on contiguous memory; a sparse kernel gathers by index, so at 90% sparsity "
           "it can still lose", ("simd", "cache")))
    masks = {name: nm_mask(w.detach(), 2, 4) for name, w in sparse_weights(b.dense).items()}
    nm = apply_masks(b.dense, masks)
    b.finetune(nm, on_step=MaskKeeper(nm, masks))
    b.add("nm_2of4", 4, "2:4 sparsity", "torch.save of 2:4 arrays (values + 2-bit positions)", nm,
          32 * measure.count_nonzero(nm), _save(b.folder, "nm_2of4", _nm_tensors(nm)),
          lambda n: f"half the weights, but each kept value carries a 2-bit position: {n['disk']:.2f}x on disk for a promised "
                    f"{n['promised']:.2f}x; the speed needs sparse tensor cores (NVIDIA Ampere and later), a CPU runs it dense",
          ("2:4 sparsity gives no speed on a CPU (dense / 2:4 time)", None, 1.25,
           "the 2:4 model runs the same dense multiply; a ratio above 1.25 means other load slowed the dense calls: run it again",
           ("threads",)))


def _ensemble_row(b: _Builder, hidden: tuple[int, ...], n_members: int, member_epochs: int) -> nn.Module:
    """Chapter 5: an ensemble of ``n_members`` MLPs of the same shape (the model and fresh ones from other seeds)."""
    members = [b.dense]
    for i in range(1, n_members):
        member = models.mlp(hidden, seed=b.seed + i)
        fit(member, b.loader(offset=i), epochs=member_epochs, lr=LR, seed=b.seed + i, progress=False)
        members.append(member.eval())
    ensemble = _Ensemble(members).eval()
    b.add("ensemble", 5, f"ensemble of {n_members} MLPs", "torch.save(state_dict) of every member", ensemble,
          32 * measure.count_parameters(ensemble), _save(b.folder, "ensemble", ensemble.state_dict()),
          lambda n: f"an ensemble is bigger, not smaller: {n_members} models, {n['file'] / n['dense']:.2f}x the bytes and "
                    f"{n_members} forward passes, for {100 * (n['accuracy'] - n['dense_accuracy']):+.1f} points here (its new members "
                    f"trained {member_epochs} epochs); it is the teacher to distill, not a compression",
          (f"the ensemble of {n_members} is slower than one MLP (dense / ensemble time)", None, 0.67,
           "each member costs one forward pass; only a machine that runs them in parallel hides that", ("threads",)))
    return ensemble


def _distillation_row(b: _Builder, ensemble: nn.Module) -> None:
    """Chapters 5 and 6: a 64-32-10 student distilled from the ensemble's soft targets (Hinton's loss)."""
    with torch.no_grad():
        teacher_logits = ensemble(b.X_train)
    student = models.mlp(STUDENT_HIDDEN, seed=b.seed)
    distill(student, b.X_train, teacher_logits, b.y_train, temperature=4.0, alpha=0.5, epochs=STUDENT_EPOCHS,
            lr=1e-2, batch_size=128, seed=b.seed)
    student.eval()
    macs = measure.count_macs(b.dense, b.x) / measure.count_macs(student, b.x)
    b.add("student", 6, "student 64-32-10, distilled", "torch.save(state_dict)", student,
          32 * measure.count_parameters(student), _save(b.folder, "student", student.state_dict()),
          lambda n: f"really smaller: a new, narrower dense network, {n['promised']:.0f}x fewer numbers to store and "
                    f"{macs:.0f}x fewer MACs; on disk {n['disk']:.0f}x, as the file format's {n['file'] - n['payload']:,} bytes of "
                    "headers weigh more in a small file; the price is paid in training and in accuracy",
          ("the distilled student is faster than the MLP (dense / student time)", 2.0, None,
           f"the student does {macs:.0f}x fewer MACs; per-call costs (Python, dispatch) dominate a network this small", ("threads",)))


def _packed_tensors(qat: nn.Module) -> dict[str, torch.Tensor]:
    """Each QAT layer's weight as ``QAT_BITS``-bit codes packed into bytes, its per-channel scales, bias and shape."""
    out = {}
    for name, m in qat.named_children():
        if isinstance(m, QATLinear):
            w = m.weight.detach()
            scale, zero_point = m.weight_quant.qparams(w)  # symmetric, one scale per output channel, zero point 0
            q = quantize(w, scale, zero_point, m.weight_quant.quant_min, m.weight_quant.quant_max, axis=0)
            out |= {f"{name}.weight.q": pack_bits(q, m.weight_quant.quant_min, QAT_BITS), f"{name}.weight.scale": scale.float(),
                    f"{name}.bias": m.bias.detach().clone(), f"{name}.shape": torch.tensor(w.shape, dtype=torch.int64)}
    return out


def _qat_row(b: _Builder) -> None:
    """Chapter 8: quantization-aware training of the weights to 4 bits (float activations), packed two to a byte."""
    qat = b.finetune(prepare_qat(b.dense, weight_bits=QAT_BITS, act_bits=None, per_channel=True))
    plain = qat_to_float(qat).eval()  # the weights on their 4-bit grid, in float32: what runs
    b.add("qat4", 8, f"QAT, {QAT_BITS}-bit weights, packed", f"torch.save of {QAT_BITS}-bit codes + scales", plain,
          QAT_BITS * measure.count_parameters(plain), _save(b.folder, "qat4", _packed_tensors(qat)),
          lambda n: f"{QAT_BITS}-bit codes pack {8 // QAT_BITS} to a byte, but every output channel keeps a float32 scale and "
                    f"a float32 bias: {n['disk']:.2f}x on disk for a promised {n['promised']:.0f}x; to run, the codes are "
                    "unpacked to float32 (a CPU has no 4-bit kernel), so no faster",
          ("4-bit weights unpacked to float32 are no faster (dense / QAT time)", None, 1.25,
           "the unpacked model runs the same dense multiply; a ratio above 1.25 means other load slowed the dense calls: run it again",
           ("threads",)))


def _deep_compression_row(b: _Builder, masked: nn.Module) -> None:
    """Chapter 8: Deep Compression on chapter 2's 90% model: shared weights, centroids fine-tuned, Huffman-coded file."""
    sparse = remove_masks(models.copy_model(masked))
    zero_dead_units(sparse)  # units that feed nothing: their weights are stored for nothing (no logit changes)
    shared = share_weights(sparse, SHARED_BITS, seed=b.seed)
    b.finetune(shared, on_step=CentroidFineTune(shared, lr=1e-3))
    round_to_half(shared)  # codebooks and biases in fp16, exactly as the file stores them
    folder = b.folder / "deep_compression"
    folder.mkdir()
    huffman = save_compressed(shared, folder / "model.ckdc")
    fixed = save_compressed(shared, folder / "fixed.ckdc", coding="fixed")
    loaded = load_compressed(folder / "model.ckdc").eval()
    weights = sum(int(torch.count_nonzero(m.weight)) for m in loaded if isinstance(m, nn.Linear))
    biases = sum(m.bias.numel() for m in loaded if isinstance(m, nn.Linear))
    b.add("deep_compression", 8, f"Deep Compression ({AMOUNT:.0%}, {SHARED_BITS}-bit shared, Huffman)", "our compressed file (.ckdc)",
          loaded, SHARED_BITS * weights + 32 * biases, (huffman, None),
          lambda n: f"each of the {weights:,} non-zeros costs its cluster index plus a relative position, and Huffman coding "
                    f"shrinks both streams: {fixed:,} bytes with fixed-width codes, {huffman:,} with Huffman's "
                    f"({fixed / huffman:.2f}x); {n['disk']:.0f}x on disk for a promised {n['promised']:.0f}x; to run it is decoded "
                    "to dense float32, so no faster",
          ("the decoded Deep Compression model is no faster (dense / decoded time)", None, 1.25,
           "it is decoded to the same dense float32 multiply; speed needs hardware that computes on the codes (EIE); a ratio "
           "above 1.25 means other load slowed the dense calls", ("threads",)))
