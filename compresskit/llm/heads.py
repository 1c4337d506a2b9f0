"""Attention-head importance and removal: a smaller, dense language model.

References
----------
[1] P. Michel, O. Levy, G. Neubig, "Are Sixteen Heads Really Better than One?", NeurIPS 2019,
    arXiv:1905.10650.

Key equations
-------------
Multi-head attention with a gate ``xi_h`` on each head's output ([1], Sec. 2):

``MHAtt(x) = sum_h xi_h Att_h(x)``,   ``xi_h = 1`` in the model as trained.                 Eq. (1)

A head's importance is the expected sensitivity of the loss to its gate ([1], Eq. (2)):

``I_h = E_x | dL(x) / dxi_h |``,                                                          Eq. (2)

with ``x`` one example (here one window of text, ``L`` its mean next-byte cross-entropy), all
gates at 1. The gradient is taken per example: each window has its own gates, so one backward
pass gives every ``dL(x)/dxi_h``. As in [1] (Sec. 4.1), the scores of each layer are divided by
their l2 norm: ``I_h / ||I_layer||_2``.

Removing head ``h`` (``xi_h = 0``) from our ``CausalSelfAttention`` is slicing: rows
``h*hd:(h+1)*hd`` of q, k and v and the same columns of proj go, and the model reads its number
of heads from q's width. The smaller model computes exactly what the original computes with
those gates at 0 (proj's bias stays). Its cost per token at context ``T`` (the attention is
computed on the full ``T x T`` scores, then masked):

``MACs/token = sum_Linear in * out + sum_layers 2 * H_l * hd * T``  (Q K^T and A V).          Eq. (3)
"""

from __future__ import annotations

import warnings
from typing import Iterable, Mapping, Sequence

import torch
from torch import nn
from torch.nn.utils import skip_init

from compresskit._validation import check_int, check_module, check_tensor, check_type
from compresskit.models import CausalSelfAttention, TinyLM, dense_copy

__all__ = ["head_importance", "least_important_heads", "macs_per_token", "remove_heads"]


def _check_lm(model: object) -> TinyLM:
    check_module("model", model)
    check_type("model", model, TinyLM, "a compresskit.models.TinyLM")
    return model


def _check_ids(batches: object) -> list[torch.Tensor]:
    if isinstance(batches, torch.Tensor) or not isinstance(batches, Iterable):
        raise TypeError(f"`batches` must be a sequence of (B, T) int64 id tensors; got {type(batches).__name__}")
    batches = list(batches)
    if not batches:
        raise ValueError("`batches` must hold at least one batch; got none")
    for i, x in enumerate(batches):
        check_tensor(f"batches[{i}]", x, ndim=2)
        if x.dtype != torch.int64 or x.shape[1] < 2:
            raise ValueError(f"`batches[{i}]` must be int64 ids with at least 2 positions (the loss predicts the next one); "
                             f"got dtype {x.dtype} and shape {tuple(x.shape)}")
    return batches


def _gate_hook(gate: torch.Tensor):
    """Multiply each head's output by its gate: proj's input (B, T, H*hd) viewed as (B, T, H, hd)."""
    def hook(module: nn.Linear, args: tuple) -> tuple:
        y = args[0]
        B, T, _ = y.shape
        H = gate.shape[1]
        return ((y.view(B, T, H, -1) * gate[:, None, :, None]).view(B, T, -1),)  # Eq. (1) in [1]
    return hook


def _gate_gradients(model: TinyLM, x: torch.Tensor, attns: list[CausalSelfAttention]) -> torch.Tensor:
    """dL(x_b)/dxi_{b,l,h} for each window b of ``x``: (B, n_layer, n_head), all gates at 1."""
    dtype = attns[0].proj.weight.dtype
    gates = [torch.ones(x.shape[0], a.n_head, dtype=dtype, requires_grad=True) for a in attns]  # one gate per window and head
    handles = [a.proj.register_forward_pre_hook(_gate_hook(g)) for a, g in zip(attns, gates)]
    try:
        logits = model(x[:, :-1])  # (B, T-1, vocab)
    finally:
        for h in handles:
            h.remove()
    nll = nn.functional.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none").mean(dim=1)  # (B,): L(x_b)
    grads = torch.autograd.grad(nll.sum(), gates)  # the sum's gradient in window b's gates is dL(x_b)/dxi
    return torch.stack(grads, dim=1)


def head_importance(model: TinyLM, batches: Iterable[torch.Tensor], *, normalize: bool = True) -> torch.Tensor:
    """``I_h = E_x |dL(x)/dxi_h|`` of every head, (n_layer, n_head), each layer divided by its l2 norm.

    ``batches``: (B, T) int64 byte ids; every window is one example ``x``, its loss the mean
    cross-entropy of predicting bytes 1..T-1 from those before. ``normalize=False``: the raw
    expectation. The model is run in eval mode and given its modes back; no ``.grad`` is written.
    """
    model = _check_lm(model)
    batches = _check_ids(batches)
    check_type("normalize", normalize, bool)
    attns = [m for m in model.modules() if isinstance(m, CausalSelfAttention)]
    if len({a.n_head for a in attns}) != 1 or attns[0].n_head == 0:
        raise ValueError(f"`model` must have the same number of heads (at least one) in every layer; got {[a.n_head for a in attns]}")
    for i, x in enumerate(batches):
        if x.shape[1] - 1 > model.config.block_size or int(x.min()) < 0 or int(x.max()) >= model.config.vocab_size:
            raise ValueError(f"`batches[{i}]` must hold ids in [0, {model.config.vocab_size}) and at most block_size+1="
                             f"{model.config.block_size + 1} positions; got shape {tuple(x.shape)}, ids {int(x.min())}..{int(x.max())}")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        total, count = torch.zeros(len(attns), attns[0].n_head, dtype=torch.float64), 0
        for x in batches:
            total += _gate_gradients(model, x, attns).abs().sum(dim=0).double()  # Eq. (2) in [1]
            count += x.shape[0]
    finally:
        for m, mode in modes:
            m.training = mode
    importance = total / count
    if normalize:  # per layer, by the l2 norm (Sec. 4.1 of [1])
        importance = importance / importance.norm(dim=1, keepdim=True).clamp_min(1e-20)
    return importance.float()


def least_important_heads(importance: torch.Tensor, k: int) -> dict[int, list[int]]:
    """The ``k`` heads of lowest importance over the whole model, as ``{layer: [heads]}`` (ties: lower index first)."""
    check_tensor("importance", importance, ndim=2, floating=True, finite=True)
    k = check_int("k", k, 0, importance.numel())
    order = importance.flatten().sort(stable=True).indices[:k].tolist()
    found: dict[int, list[int]] = {}
    for i in sorted(order):
        found.setdefault(i // importance.shape[1], []).append(i % importance.shape[1])
    return found


def _check_heads(model: TinyLM, heads: object) -> dict[int, list[int]]:
    if not isinstance(heads, Mapping):
        raise TypeError(f"`heads` must be a mapping {{layer: [head, ...]}}; got {type(heads).__name__} {heads!r}")
    found: dict[int, list[int]] = {}
    for layer, hs in heads.items():
        layer = check_int("heads (a layer)", layer, 0, len(model.blocks) - 1)
        if isinstance(hs, (str, bytes)) or not isinstance(hs, Sequence):
            raise TypeError(f"`heads[{layer}]` must be a sequence of head indices; got {type(hs).__name__} {hs!r}")
        n_head = model.blocks[layer].attn.n_head
        hs = [check_int(f"heads[{layer}]", h, 0, n_head - 1) for h in hs]
        if len(set(hs)) != len(hs):
            raise ValueError(f"`heads[{layer}]` must not repeat a head; got {hs}")
        found[layer] = hs
    return found


def _sliced(fc: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear with only the rows (dim 0) or input columns (dim 1) in ``index``."""
    weight = fc.weight.detach().index_select(dim, index)
    with warnings.catch_warnings():  # a layer with every head removed has zero-element weights
        warnings.filterwarnings("ignore", "Initializing zero-element tensors", UserWarning)
        new = skip_init(nn.Linear, weight.shape[1], weight.shape[0], bias=fc.bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if fc.bias is not None:
            new.bias.copy_(fc.bias.detach() if dim == 1 else fc.bias.detach().index_select(0, index))
    new.weight.requires_grad_(fc.weight.requires_grad)
    return new.train(fc.training)


def remove_heads(model: TinyLM, heads: Mapping[int, Sequence[int]]) -> TinyLM:
    """A new, smaller, dense TinyLM without ``heads`` (``{layer: [head, ...]}``, the model's own indices).

    q, k and v lose the heads' rows and proj the same columns; the result computes what ``model``
    computes with those heads' gates at 0. A model pruned with ``torch.nn.utils.prune`` has its masks
    made permanent in the result. ``model.config`` still describes the model before removal: count
    from the tensors (:func:`macs_per_token`, ``compresskit.measure.count_parameters``).
    """
    model = _check_lm(model)
    heads = _check_heads(model, heads)
    new = dense_copy(model)
    for layer, hs in heads.items():
        attn = new.blocks[layer].attn
        hd = attn.head_dim
        keep = [h for h in range(attn.n_head) if h not in hs]
        index = torch.tensor([h * hd + i for h in keep for i in range(hd)], dtype=torch.long)  # the kept heads' channels
        attn.q, attn.k, attn.v = (_sliced(fc, index, 0) for fc in (attn.q, attn.k, attn.v))
        attn.proj = _sliced(attn.proj, index, 1)
    return new


def macs_per_token(model: TinyLM, context: int) -> int:
    """Multiply-accumulates per token of a forward pass over ``context`` tokens (Eq. (3)): every Linear
    (the tied head included) and the attention's ``Q K^T`` and ``A V`` on the full ``T x T`` scores."""
    model = _check_lm(model)
    context = check_int("context", context, 1, model.config.block_size)
    linear = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    attention = sum(2 * a.n_head * a.head_dim * context for a in model.modules() if isinstance(a, CausalSelfAttention))
    return linear + attention  # Eq. (3)
