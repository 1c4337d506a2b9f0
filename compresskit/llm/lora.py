"""LoRA: fine-tune a frozen model through a low-rank update; QLoRA's idea: the frozen base in int4.

LoRA (Hu et al. [1]) freezes a pretrained weight ``W0`` (out x in) and learns its update as a
product of two thin matrices, ``B`` (out x r) and ``A`` (r x in), r << min(in, out)::

    h = W0 x + b + (alpha / r) B A x                                                       (Eq. (3) in [1])

``A`` starts random (Kaiming-uniform, as in the reference ``loralib`` and Hugging Face ``peft``)
and ``B`` at zero, so ``B A = 0`` and training starts exactly at the pretrained model (Sec. 4.1).
``alpha / r`` keeps the update's scale when r changes. After training the update merges into one
weight, so inference costs nothing extra::

    W = W0 + (alpha / r) B A                                                                (Sec. 4.1)

What it saves: only ``r (in + out)`` numbers per adapted layer are trainable instead of
``in * out``, so Adam's state, two float32 moments per trainable number (Kingma and Ba [3]), shrinks
by the same factor. What it does not save: the forward and backward pass still run through the
whole frozen model, so a training step costs about as much time as full fine-tuning's.

QLoRA (Dettmers et al. [2]) stores the frozen base in 4 bits and dequantizes it in the forward
pass; only the adapters are float. Theirs is NF4 with double quantization; ours is chapter 9's
int4 round-to-nearest with fp16 scales and zero points per group of ``group_size`` inputs
(:func:`compresskit.llm.quantize_rtn`), *not* NF4: :class:`QuantizedLinear`.

References
----------
[1] Hu, Shen, Wallis, Allen-Zhu, Li, Wang, Wang, Chen. "LoRA: Low-Rank Adaptation of Large Language
    Models", 2021, arXiv:2106.09685.
[2] Dettmers, Pagnoni, Holtzman, Zettlemoyer. "QLoRA: Efficient Finetuning of Quantized LLMs",
    2023, arXiv:2305.14314.
[3] Kingma, Ba. "Adam: A Method for Stochastic Optimization", 2014, arXiv:1412.6980; Loshchilov,
    Hutter. "Decoupled Weight Decay Regularization" (AdamW), 2017, arXiv:1711.05101.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from compresskit._validation import check_int, check_module, check_real, check_seed, check_tensor, check_type
from compresskit.llm.groupwise import dequantize, pack_int4, quantize_rtn, unpack_int4
from compresskit.llm.lowrank import effective_weight
from compresskit.models import dense_copy
from compresskit.text import batches, check_ids

__all__ = [
    "LoRALinear",
    "QuantizedLinear",
    "adam_state_bytes",
    "add_lora",
    "add_qlora",
    "finetune",
    "frozen_bytes",
    "lora_delta",
    "lora_parameter_count",
    "merge_lora",
    "optimizer_state_bytes",
    "trainable_parameters",
]


# --- pure tensor functions -----------------------------------------------------------------------

def lora_delta(A: torch.Tensor, B: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(alpha / r) B A``, (out, in): the update LoRA adds to W0, r = A's rows."""
    check_tensor("A", A, ndim=2, floating=True, finite=True)
    check_tensor("B", B, ndim=2, floating=True, finite=True)
    if B.shape[1] != A.shape[0]:
        raise ValueError(f"`B` must have A's rank r={A.shape[0]} columns; got shapes B {tuple(B.shape)}, A {tuple(A.shape)}")
    alpha = check_real("alpha", alpha, 0.0, low_open=True)
    return (alpha / A.shape[0]) * (B @ A)  # Sec. 4.1 in [1]


def adam_state_bytes(n_params: int, n_tensors: int = 0, bytes_per_value: int = 4) -> int:
    """Adam's / AdamW's state: two moments (exp_avg, exp_avg_sq) per trainable number, plus torch's
    one scalar ``step`` counter per parameter tensor (``n_tensors``; 0 counts the moments only)."""
    n_params, n_tensors = check_int("n_params", n_params, 0), check_int("n_tensors", n_tensors, 0)
    bytes_per_value = check_int("bytes_per_value", bytes_per_value, 1)
    return (2 * n_params + n_tensors) * bytes_per_value


# --- modules -------------------------------------------------------------------------------------

class QuantizedLinear(nn.Module):
    """A frozen Linear stored as group-wise RTN codes (chapter 9), dequantized in every forward pass.

    Buffers: ``codes`` (uint8; two 4-bit codes per byte when ``bits <= 4``), ``scale`` and
    ``zero_point`` (float16, (out, in / group_size)) and ``bias`` (float32). No parameters: nothing
    here trains. QLoRA's NF4 is not implemented; this is int4 round-to-nearest, asymmetric.
    """

    def __init__(self, linear: nn.Linear, bits: int = 4, group_size: int = 64) -> None:
        super().__init__()
        check_type("linear", linear, nn.Linear)
        bits = check_int("bits", bits, 2, 8)
        group_size = check_int("group_size", group_size, 1, linear.in_features)
        if linear.in_features % group_size:
            raise ValueError(f"`group_size` must divide in_features={linear.in_features}; got {group_size}")
        weight = effective_weight(linear)  # a pruned layer as its forward pass sees it
        if not bool(torch.isfinite(weight).all()):
            raise ValueError(f"`linear` must have a finite weight; got {int((~torch.isfinite(weight)).sum())} NaN or inf value(s)")
        q = quantize_rtn(weight, bits, group_size)
        self.in_features, self.out_features, self.bits, self.group_size = linear.in_features, linear.out_features, bits, group_size
        self.register_buffer("codes", pack_int4(q.codes) if bits <= 4 else q.codes.to(torch.uint8))  # (out, in/2) or (out, in)
        self.register_buffer("scale", q.scale.half())  # (out, groups)
        self.register_buffer("zero_point", q.zero_point.half())  # (out, groups)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())

    def dequantize(self) -> torch.Tensor:
        """W0 as the forward pass uses it, (out, in) float32."""
        codes = unpack_int4(self.codes, self.in_features) if self.bits <= 4 else self.codes
        return dequantize(codes.to(torch.int16), self.scale.float(), self.zero_point.to(torch.int32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantize(), self.bias)  # (..., out)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}, group_size={self.group_size}"


def _kaiming_uniform(rows: int, fan_in: int, seed: int) -> torch.Tensor:
    """nn.init.kaiming_uniform_(a=sqrt(5)), as nn.Linear, loralib and peft initialise A: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)  # gain sqrt(2 / (1 + 5)) * sqrt(3 / fan_in)
    return (torch.rand(rows, fan_in, generator=torch.Generator().manual_seed(seed)) * 2 - 1) * bound


class LoRALinear(nn.Module):
    """``h = base(x) + (alpha / r) B A x`` with ``base`` frozen (its parameters' requires_grad set to
    False; it is held, not copied), A (r, in) Kaiming-uniform from ``seed`` and B (out, r) zero.

    ``base``: an ``nn.Linear`` or a :class:`QuantizedLinear` (QLoRA). :meth:`merge` gives one nn.Linear.
    """

    def __init__(self, base: nn.Linear | QuantizedLinear, rank: int, alpha: float, *, seed: int = 0) -> None:
        super().__init__()
        check_type("base", base, (nn.Linear, QuantizedLinear))
        rank = check_int("rank", rank, 1, min(base.in_features, base.out_features))
        alpha = check_real("alpha", alpha, 0.0, low_open=True)
        seed = check_seed("seed", seed)
        self.base, self.rank, self.alpha = base, rank, alpha
        self.scaling = alpha / rank
        for p in base.parameters():
            p.requires_grad_(False)
        dtype = base.weight.dtype if isinstance(base, nn.Linear) else torch.float32
        self.lora_A = nn.Parameter(_kaiming_uniform(rank, base.in_features, seed).to(dtype))  # (r, in)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, dtype=dtype))  # (out, r): B A = 0 at the start

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * ((x @ self.lora_A.T) @ self.lora_B.T)  # Eq. (3) in [1], (..., out)

    def base_weight(self) -> torch.Tensor:
        """W0, (out, in): the base's weight (dequantized for a QuantizedLinear)."""
        return self.base.dequantize() if isinstance(self.base, QuantizedLinear) else effective_weight(self.base)

    def merge(self) -> nn.Linear:
        """A new nn.Linear with weight W0 + (alpha / r) B A and the base's bias (float32 for a quantized base)."""
        weight = self.base_weight() + lora_delta(self.lora_A.detach(), self.lora_B.detach(), self.alpha)  # Sec. 4.1 in [1]
        bias = self.base.bias
        merged = nn.Linear(self.in_features, self.out_features, bias=bias is not None, dtype=weight.dtype, device=weight.device)
        with torch.no_grad():
            merged.weight.copy_(weight)
            if bias is not None:
                merged.bias.copy_(bias)
        return merged.train(self.training)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}"


# --- whole models --------------------------------------------------------------------------------

def _matches(name: str, targets: Sequence[str]) -> bool:
    """peft's rule: a module matches a target equal to its name or to its name's last parts."""
    return any(name == t or name.endswith("." + t) for t in targets)


def _targets(model: nn.Module, targets: Sequence[str]) -> dict[str, nn.Linear]:
    if isinstance(targets, str) or not isinstance(targets, Sequence):
        raise TypeError(f"`targets` must be a sequence of layer names (e.g. ('q', 'v')); got {type(targets).__name__} {targets!r}")
    if not targets:
        raise ValueError("`targets` must name at least one layer (e.g. ('q', 'v')); got an empty sequence")
    for i, t in enumerate(targets):
        check_type(f"targets[{i}]", t, str)
    found = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and _matches(n, targets)}
    if not found:
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        raise ValueError(f"`targets` must name nn.Linear layers of `model` (e.g. {linears[:3]}); got {list(targets)!r}, which match none")
    return found


def _check_lora(model: nn.Module, rank: int, alpha: float, targets: Sequence[str], seed: int) -> dict[str, nn.Linear]:
    """Every argument of add_lora / add_qlora checked before a copy is made."""
    check_module("model", model)
    found = _targets(model, targets)
    rank = check_int("rank", rank, 1)
    for name, m in found.items():
        if rank > min(m.in_features, m.out_features):
            raise ValueError(f"`rank` must be in [1, {min(m.in_features, m.out_features)}] for `{name}` "
                             f"({m.out_features} x {m.in_features}); got {rank}")
    check_real("alpha", alpha, 0.0, low_open=True)
    check_seed("seed", seed)
    for name, p in model.named_parameters():
        if p.is_floating_point() and not bool(torch.isfinite(p).all()):
            raise ValueError(f"`model` must have finite weights; got NaN or inf in `{name}`")
    return found


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def lora_parameter_count(model: nn.Module, rank: int, targets: Sequence[str] = ("q", "v")) -> int:
    """``sum r (in + out)`` over the Linear layers ``targets`` names: the numbers :func:`add_lora` trains."""
    check_module("model", model)
    found = _targets(model, targets)
    rank = check_int("rank", rank, 1)
    return sum(rank * (m.in_features + m.out_features) for m in found.values())


def add_lora(model: nn.Module, rank: int, alpha: float, targets: Sequence[str] = ("q", "v"), *, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every Linear that ``targets`` names wrapped in :class:`LoRALinear`,
    every other parameter frozen (requires_grad False): only the adapters' A and B train.

    ``targets`` match a layer's name or its last parts (``"q"`` matches ``blocks.0.attn.q``), as in
    peft; the paper adapts W_q and W_v (Sec. 7.1). Layer i (in model order) draws its A from
    ``seed + i``. The caller's model is not changed; a pruned model's masks are made permanent in
    the copy (the frozen base keeps its zeros; the merged update fills them).
    """
    found = _check_lora(model, rank, alpha, targets, seed)
    new = dense_copy(model)
    for p in new.parameters():
        p.requires_grad_(False)
    for i, name in enumerate(found):
        _replace(new, name, LoRALinear(new.get_submodule(name), rank, alpha, seed=seed + i).train(new.training))
    return new


def add_qlora(
    model: nn.Module, rank: int, alpha: float, bits: int = 4, group_size: int = 64,
    targets: Sequence[str] = ("q", "v"), *, seed: int = 0,
) -> nn.Module:
    """QLoRA's idea: a copy whose every Linear (a tied head excepted: it is the embedding) is a frozen
    :class:`QuantizedLinear` (int4 RTN, not NF4), the ``targets`` among them wrapped in
    :class:`LoRALinear` with float adapters; every other parameter frozen. The caller's model is not changed.
    """
    found = _check_lora(model, rank, alpha, targets, seed)
    bits = check_int("bits", bits, 2, 8)
    group_size = check_int("group_size", group_size, 1)
    shared = _shared(model)
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and id(m.weight) not in shared}
    for name, m in linears.items():
        if m.in_features % group_size:
            raise ValueError(f"`group_size` must divide in_features={m.in_features} of `{name}`; got {group_size}")
    new = dense_copy(model)
    for p in new.parameters():
        p.requires_grad_(False)
    for name in linears:
        _replace(new, name, QuantizedLinear(new.get_submodule(name), bits, group_size).train(new.training))
    for i, name in enumerate(found):
        _replace(new, name, LoRALinear(new.get_submodule(name), rank, alpha, seed=seed + i).train(new.training))
    return new


def _shared(model: nn.Module) -> set[int]:
    """ids of Parameters under more than one name (a tied embedding and head)."""
    counts: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        counts[id(p)] = counts.get(id(p), 0) + 1
    return {k for k, c in counts.items() if c > 1}


def merge_lora(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every :class:`LoRALinear` replaced by its :meth:`~LoRALinear.merge`d
    nn.Linear and every parameter trainable again: a plain model, as fast as the one before LoRA."""
    check_module("model", model)
    wrapped = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    if not wrapped:
        raise ValueError(f"`model` must contain a LoRALinear (from add_lora or add_qlora); got {type(model).__name__} with none")
    new = dense_copy(model)
    for name in wrapped:
        _replace(new, name, new.get_submodule(name).merge())
    for p in new.parameters():
        p.requires_grad_(True)
    return new


# --- counting --------------------------------------------------------------------------------------

def trainable_parameters(model: nn.Module) -> int:
    """Numbers with ``requires_grad`` (a tensor shared by two modules counted once)."""
    check_module("model", model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def frozen_bytes(model: nn.Module) -> int:
    """Bytes of every parameter that does not train and every buffer (the frozen base), each tensor once."""
    check_module("model", model)
    seen: dict[int, int] = {}
    for t in [p for p in model.parameters() if not p.requires_grad] + [b for b in model.buffers()]:
        seen[id(t)] = t.numel() * t.element_size()
    return sum(seen.values())


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in ``optimizer.state`` (Adam: exp_avg, exp_avg_sq and a scalar step per parameter)."""
    check_type("optimizer", optimizer, torch.optim.Optimizer)
    return sum(v.numel() * v.element_size() for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor))


# --- training ---------------------------------------------------------------------------------------

def _probe(model: nn.Module, ids: torch.Tensor, context: int) -> None:
    """Every byte value in ``ids`` through the model once, in eval mode without gradients, before any
    step: a byte the model cannot embed fails here, not after some training steps. Modes given back."""
    modes = [(m, m.training) for m in model.modules()]
    values = ids.unique()  # (<= 256,)
    try:
        model.eval()
        with torch.no_grad():
            for i in range(0, values.numel(), context):
                model(values[i:i + context].reshape(1, -1))  # (1, <= context)
    except (RuntimeError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"`ids` must be byte ids `model` can take (ids in [{int(values[0])}, {int(values[-1])}]): {exc}") from exc
    finally:
        for m, mode in modes:
            m.training = mode


def finetune(
    model: nn.Module, ids: torch.Tensor, steps: int, *, batch_size: int = 8, context: int = 64, lr: float = 1e-3,
    seed: int = 0, optimizer: torch.optim.Optimizer | None = None,
) -> list[float]:
    """Train the parameters of ``model`` that require grad, in place, on next-byte prediction over
    random windows of ``ids`` (compresskit.text.batches with ``seed``); returns the loss (nats per
    byte) of every step. AdamW with ``lr`` and no weight decay, unless an ``optimizer`` is given
    (pass one to read its state afterwards, e.g. with :func:`optimizer_state_bytes`). Every module's
    training mode is given back.
    """
    check_module("model", model)
    context = check_int("context", context, 1, getattr(getattr(model, "config", None), "block_size", None))
    ids = check_ids("ids", ids, min_len=context + 1)
    steps, batch_size = check_int("steps", steps, 1), check_int("batch_size", batch_size, 1)
    lr, seed = check_real("lr", lr, 0.0, low_open=True), check_seed("seed", seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("`model` must have parameters that require grad (add_lora leaves A and B trainable); got none")
    if optimizer is None:
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    check_type("optimizer", optimizer, torch.optim.Optimizer)
    _probe(model, ids, context)
    modes, losses = [(m, m.training) for m in model.modules()], []
    model.train()
    try:
        for x, y in batches(ids, batch_size, context, seed=seed, steps=steps):
            logits = model(x)  # (B, T, vocab)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    finally:
        for m, mode in modes:
            m.training = mode
    return losses
