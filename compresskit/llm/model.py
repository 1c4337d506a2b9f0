"""Whole-model helpers: calibration inputs, the LayerNorm -> Linear pairs to fold into, and quantize_model.

Written against any model built of ``nn.Linear`` layers (LayerNorms, embeddings and anything else
between them): nothing here knows the course's transformer. ``quantize_model`` returns a new
model whose Linear weights are the dequantized weights of one method, and keeps the integer codes
beside them (``quantized_weights``) so that :func:`~compresskit.llm.groupwise.save_quantized`
writes the real file:

- ``"rtn"``: round-to-nearest, per channel or per group (:mod:`compresskit.llm.groupwise`).
- ``"gptq"``: layer by layer in the order the forward pass reaches them, each with the Hessian of
  its inputs in the model whose earlier layers are already quantized (as the reference quantizes
  block after block with the quantized blocks' outputs) (:mod:`compresskit.llm.gptq`).
- ``"awq"``: for each LayerNorm or Linear that feeds Linear layers directly, scales searched on the
  inputs those layers see now and folded (:mod:`compresskit.llm.awq`); Linear layers with no such
  layer before them (after an activation or the attention) are quantized round-to-nearest.

A tied embedding and output head (one Parameter in two places) is left in float unless
``embedding_bits`` is given; then every ``nn.Embedding`` (and so the tied head) is quantized per
row, round-to-nearest. A model pruned with torch.nn.utils.prune is quantized with its masks made
permanent in the copy (its zeros stay zeros under RTN and AWQ; GPTQ's updates may fill them).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from compresskit._validation import check_choice, check_int, check_module, check_real, check_type
from compresskit.llm.awq import awq_search
from compresskit.llm.folding import fold_scales
from compresskit.llm.gptq import gptq, gptq_hessian
from compresskit.llm.groupwise import QuantizedWeight, load_quantized, quantize_rtn
from compresskit.llm.smoothquant import W8A8Linear, activation_outliers, smooth_scales
from compresskit.models import dense_copy

__all__ = ["calibration_inputs", "find_folds", "load_quantized_model", "quantize_model", "quantized_state_dict", "smoothquant_model"]


def _batches(batches: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(batches, torch.Tensor) or not isinstance(batches, Iterable):
        raise TypeError(f"`calibration` must be a sequence of input batches (tensors); got {type(batches).__name__}")
    batches = list(batches)
    if not batches:
        raise ValueError("`calibration` must hold at least one batch; got none")
    for i, b in enumerate(batches):
        check_type(f"calibration[{i}]", b, torch.Tensor)
    return batches


class _Stop(Exception):
    """Raised by a hook to end a forward pass early."""


def _run(model: nn.Module, batches: Sequence[torch.Tensor], hooks: list[tuple[nn.Module, str, object]], name: str = "calibration") -> None:
    """Forward every batch in eval mode without gradients with the hooks on; modes and hooks given back after.

    A batch the model cannot take is a ValueError naming it (``name[i]``), with the model's own error.
    """
    modes = [(m, m.training) for m in model.modules()]
    handles = []
    try:
        for module, kind, fn in hooks:
            handles.append(module.register_forward_pre_hook(fn) if kind == "pre" else module.register_forward_hook(fn))
        model.eval()
        with torch.no_grad():
            for i, b in enumerate(batches):
                try:
                    model(b)
                except _Stop:  # a hook has what it needs: the rest of the forward pass is not computed
                    pass
                except (RuntimeError, IndexError, TypeError, ValueError) as exc:
                    raise ValueError(f"`{name}[{i}]` must be a batch `model` can take; got {tuple(b.shape)} {b.dtype}: {exc}") from exc
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode


def _linears(model: nn.Module) -> dict[str, nn.Linear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}


def calibration_inputs(model: nn.Module, batches: Iterable[torch.Tensor], names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """Each Linear's inputs over ``batches``, (rows, in_features), in the order the forward pass reaches them.

    With ``names``, only those layers' inputs, and each forward pass stops once every one of them
    has seen its input (a layer called twice in one pass gives its first input only).
    """
    check_module("model", model)
    batches = _batches(batches)
    linears = _linears(model)
    if not linears:
        raise ValueError(f"`model` must contain an nn.Linear; got {type(model).__name__} with none")
    if names is not None:
        missing = [n for n in names if n not in linears]
        if missing:
            raise ValueError(f"`names` must name Linear layers of `model`; got {missing}")
        linears = {n: linears[n] for n in names}
    seen: dict[str, list[torch.Tensor]] = {}
    stop, left = names is not None, set(linears)

    def keep(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            if stop and name not in left:
                return
            seen.setdefault(name, []).append(args[0].detach().reshape(-1, module.in_features).clone())
            left.discard(name)
            if stop and not left:  # every named layer has its input from this batch
                left.update(linears)
                raise _Stop
        return hook

    _run(model, batches, [(m, "pre", keep(n)) for n, m in linears.items()])
    return {n: torch.cat(xs) for n, xs in seen.items()}


def _shared(model: nn.Module) -> set[int]:
    """ids of Parameters that appear under more than one name (a tied embedding and head)."""
    counts: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        counts[id(p)] = counts.get(id(p), 0) + 1
    return {k for k, c in counts.items() if c > 1}


def find_folds(model: nn.Module, example: torch.Tensor) -> list[tuple[str, list[str]]]:
    """``(prev, [linears])``: each LayerNorm or Linear whose output is, as it is, the input of Linear layers.

    Found by running ``example``: a Linear's input must be the very tensor a LayerNorm or Linear
    returned (not a view of it, not after an activation). Layers with a tied weight are left out, and
    so is a pair whose fold changes the model's output on ``example`` (the layer's output also goes
    somewhere else): each pair is folded with random scales into a copy and the outputs compared.
    """
    check_module("model", model)
    check_type("example", example, torch.Tensor)
    modules = dict(model.named_modules())
    shared = _shared(model)
    outputs: dict[int, tuple[str, torch.Tensor]] = {}  # the tensors are kept so their ids are not reused
    pairs: dict[str, list[str]] = {}

    def output(name: str):
        return lambda module, args, out: outputs.__setitem__(id(out), (name, out))

    def reads(name: str):
        def hook(module, args):
            found = outputs.get(id(args[0]))
            if found is not None and id(module.weight) not in shared:
                pairs.setdefault(found[0], []).append(name)
        return hook

    hooks = [(m, "post", output(n)) for n, m in modules.items() if isinstance(m, (nn.LayerNorm, nn.Linear))]
    hooks += [(m, "pre", reads(n)) for n, m in modules.items() if isinstance(m, nn.Linear)]
    _run(model, [example], hooks, "example")
    found = [(p, ls) for p, ls in pairs.items() if id(getattr(modules[p], "weight", None)) not in shared
             and not (isinstance(modules[p], nn.LayerNorm) and not modules[p].elementwise_affine)]
    return [(p, ls) for p, ls in found if _fold_keeps_function(model, example, p, ls)]


def _outputs(model: nn.Module, example: torch.Tensor) -> list[torch.Tensor]:
    result: list = []
    _run(model, [example], [(model, "post", lambda m, a, out: result.append(out))], "example")
    leaves, out = [], result[0]
    stack = [out]
    while stack:  # the tensors of a tensor, tuple, list or dict output
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            leaves.append(item.float())
        elif isinstance(item, (tuple, list)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return leaves


def _fold_keeps_function(model: nn.Module, example: torch.Tensor, prev: str, linears: list[str]) -> bool:
    """Fold scales in [0.5, 2] into a copy and compare its outputs with the model's."""
    trial = dense_copy(model)
    modules = dict(trial.named_modules())
    s = torch.rand(modules[linears[0]].in_features, generator=torch.Generator().manual_seed(0)) * 1.5 + 0.5
    fold_scales(modules[prev], [modules[n] for n in linears], s)
    before, after = _outputs(model, example), _outputs(trial, example)
    return all(torch.allclose(a, b, rtol=1e-3, atol=1e-4 * float(b.abs().max()) + 1e-6) for a, b in zip(after, before))


def _check_model(model: nn.Module, bits: int, group_size: int | None, embedding_bits: int | None) -> dict[str, nn.Linear]:
    """Everything about the model checked before a copy is made."""
    check_module("model", model)
    linears = _linears(model)
    if not linears:
        raise ValueError(f"`model` must contain an nn.Linear to quantize; got {type(model).__name__} with none")
    check_int("bits", bits, 2, 8)
    if embedding_bits is not None:
        check_int("embedding_bits", embedding_bits, 2, 8)
    if group_size is not None:
        check_int("group_size", group_size, 1)
        for name, fc in linears.items():
            if fc.in_features % group_size:
                raise ValueError(f"`group_size` must divide in_features={fc.in_features} of `{name}`; got {group_size}")
    for name, p in model.named_parameters():
        if p.is_floating_point() and not bool(torch.isfinite(p).all()):
            raise ValueError(f"`model` must have finite weights; got NaN or inf in `{name}`")
    return linears


def _forward_stages(model: nn.Module, example: torch.Tensor, names: Sequence[str]) -> list[list[str]]:
    """The layers in the order the forward pass reaches them, those that read one tensor (q, k, v) together."""
    calls: list[tuple[str, torch.Tensor]] = []  # the inputs are kept so their ids are not reused
    modules = dict(model.named_modules())
    _run(model, [example], [(modules[n], "pre", (lambda n: lambda m, a: calls.append((n, a[0])))(n)) for n in names])
    stages: list[list[str]] = []
    for i, (name, x) in enumerate(calls):
        if any(name in stage for stage in stages):
            continue
        if i and x is calls[i - 1][1] and calls[i - 1][0] in stages[-1]:
            stages[-1].append(name)
        else:
            stages.append([name])
    return stages + [[n] for n in names if not any(n in stage for stage in stages)]


def quantize_model(
    model: nn.Module,
    method: str,
    bits: int,
    group_size: int | None = None,
    calibration: Iterable[torch.Tensor] | None = None,
    *,
    symmetric: bool = False,
    embedding_bits: int | None = None,
    act_order: bool = False,
    percdamp: float = 0.01,
    n_grid: int = 20,
) -> nn.Module:
    """A new model with every Linear weight quantized by ``method`` ("rtn", "gptq", "awq") and dequantized.

    ``calibration``: batches of model inputs (needed by "gptq" and "awq"). The codes are kept in the
    returned model's ``quantized_weights`` (parameter name -> QuantizedWeight). The caller's model
    is not changed; every argument is checked before anything is computed.
    """
    check_choice("method", method, ["rtn", "gptq", "awq"])
    linears = _check_model(model, bits, group_size, embedding_bits)
    check_type("symmetric", symmetric, bool)
    check_type("act_order", act_order, bool)
    check_real("percdamp", percdamp, 0.0, 1.0)
    check_int("n_grid", n_grid, 2)
    if method != "rtn":
        if calibration is None:
            raise ValueError(f"`calibration` must be given (batches of model inputs) for method {method!r}; got None")
        calibration = _batches(calibration)
    new = dense_copy(model)
    shared = _shared(new)
    linears = {n: m for n, m in _linears(new).items() if id(m.weight) not in shared}  # a tied head follows its embedding
    stages = _forward_stages(new, calibration[0], list(linears)) if method != "rtn" else [[n] for n in linears]
    if method == "awq":
        for prev, names in find_folds(new, calibration[0]):
            X = calibration_inputs(new, calibration, [names[0]])[names[0]]
            found = awq_search([linears[n].weight for n in names], X, bits, group_size, symmetric, n_grid)
            fold_scales(dict(new.named_modules())[prev], [linears[n] for n in names], found.scales)
    codes: dict[str, QuantizedWeight] = {}
    for stage in stages:
        if method == "gptq":  # inputs through the layers quantized so far; layers of a stage share them
            H = gptq_hessian(calibration_inputs(new, calibration, stage[:1])[stage[0]])
        for name in stage:
            fc = linears[name]
            if method == "gptq":
                q = gptq(fc.weight, H, bits, group_size, symmetric, act_order=act_order, percdamp=percdamp)
            else:
                q = quantize_rtn(fc.weight, bits, group_size, symmetric)
            with torch.no_grad():
                fc.weight.copy_(q.dequantize())
            codes[f"{name}.weight"] = q
    if embedding_bits is not None:
        codes.update(_quantize_embeddings(new, embedding_bits, symmetric))
    new.quantized_weights = codes
    return new


def _quantize_embeddings(model: nn.Module, bits: int, symmetric: bool) -> dict[str, QuantizedWeight]:
    """Every nn.Embedding per row (per token), round-to-nearest; a head tied to it gets the same codes."""
    found: dict[int, QuantizedWeight] = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Embedding):
            q = quantize_rtn(m.weight, bits, None, symmetric)
            with torch.no_grad():
                m.weight.copy_(q.dequantize())
            found[id(m.weight)] = q
    return {name: found[id(p)] for name, p in model.named_parameters(remove_duplicate=False) if id(p) in found}


def quantized_state_dict(model: nn.Module) -> dict[str, torch.Tensor | QuantizedWeight]:
    """``model.state_dict()`` with the quantized weights as their codes: what :func:`save_quantized` writes."""
    check_module("model", model)
    codes = getattr(model, "quantized_weights", None)
    if not isinstance(codes, dict):
        raise ValueError("`model` must come from quantize_model (it has no `quantized_weights`)")
    state = dict(model.state_dict(keep_vars=True))
    return {k: codes.get(k, v.detach()) for k, v in state.items()}


def load_quantized_model(path: str, model: nn.Module) -> nn.Module:
    """A copy of ``model`` (the same architecture) with the weights of a file written by save_quantized."""
    check_module("model", model)
    tensors = load_quantized(path)
    new = dense_copy(model)
    state = {k: (v.dequantize() if isinstance(v, QuantizedWeight) else v) for k, v in tensors.items()}
    expected = set(new.state_dict())
    if set(state) != expected:
        raise ValueError(f"`path` holds other tensors than `model`: missing {sorted(expected - set(state))[:5]}, "
                         f"unexpected {sorted(set(state) - expected)[:5]}")
    new.load_state_dict(state)
    new.quantized_weights = {k: v for k, v in tensors.items() if isinstance(v, QuantizedWeight)}
    return new


def smoothquant_model(
    model: nn.Module, calibration: Iterable[torch.Tensor], alpha: float | None = 0.5, activations: str = "per_token"
) -> nn.Module:
    """A new model: SmoothQuant's scales folded into every LayerNorm -> Linear pair (``alpha=None``: none),
    then every Linear (a tied head excepted) a :class:`W8A8Linear`. The caller's model is not changed."""
    check_module("model", model)
    if alpha is not None:
        check_real("alpha", alpha, 0.0, 1.0)
    check_choice("activations", activations, ["per_token", "per_tensor"])
    calibration = _batches(calibration)
    _check_model(model, 8, None, None)
    new = dense_copy(model)
    modules = dict(new.named_modules())
    for prev, names in (find_folds(new, calibration[0]) if alpha is not None else []):
        if isinstance(modules[prev], nn.LayerNorm):
            act_max = activation_outliers(calibration_inputs(new, calibration, names[:1])[names[0]]).channel_max
            fold_scales(modules[prev], [modules[n] for n in names], smooth_scales(act_max, [modules[n].weight for n in names], alpha))
    shared = _shared(new)
    for name, m in list(new.named_modules()):
        if isinstance(m, nn.Linear) and id(m.weight) not in shared:
            parent, _, child = name.rpartition(".")
            setattr(new.get_submodule(parent) if parent else new, child, W8A8Linear.from_float(m, activations).train(m.training))
    return new
