"""The small models the course compresses: an MLP and a CNN for 8x8 digits, and a small
byte-level transformer language model (:class:`TinyLM`, chapters 9 and 10).

Both take images of shape (B, 1, 8, 8) and return logits (B, 10). Layers have names
(``fc1``, ``conv1``, ``bn1``, ...) so that chapters and tests can address them.

:func:`copy_model` copies any model, a pruned one included, so that every technique can
work on a copy and leave the caller's model alone.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils import prune

from compresskit._validation import check_choice, check_int, check_module, check_seed, check_type

__all__ = [
    "Block",
    "CausalSelfAttention",
    "MLP",
    "TINY_LM_CONFIGS",
    "TINY_LM_FILES",
    "TinyLM",
    "TinyLMConfig",
    "cnn",
    "copy_model",
    "dense_copy",
    "load_tiny_lm",
    "mlp",
    "tiny_lm",
]


def _sizes(name: str, values: Sequence[int], *, nonempty: bool) -> list[int]:
    """Each entry an integer >= 1 (Python or numpy), in a sequence that is not a single int or a str."""
    if isinstance(values, (numbers.Integral, str, bytes)) or not isinstance(values, Sequence) or (nonempty and len(values) == 0):
        what = "a non-empty sequence" if nonempty else "a sequence"
        raise TypeError(f"`{name}` must be {what} of ints; got {type(values).__name__} {values!r}")
    return [check_int(f"{name}[{i}]", v, 1) for i, v in enumerate(values)]


def mlp(hidden: Sequence[int] = (256, 256), in_features: int = 64, num_classes: int = 10, *, seed: int = 0) -> nn.Sequential:
    """Flatten -> [Linear -> ReLU] * len(hidden) -> Linear.

    Layer names: ``flatten``, ``fc1``, ``relu1``, ..., ``fc{len(hidden)+1}``.
    Weights are initialised from ``seed`` (PyTorch's default init, drawn from a private generator).
    """
    sizes = [check_int("in_features", in_features, 1)]
    sizes += _sizes("hidden", hidden, nonempty=False)
    sizes += [check_int("num_classes", num_classes, 2)]
    seed = check_seed("seed", seed)
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            layers[f"fc{i}"] = nn.Linear(n_in, n_out)
            if i < len(sizes) - 1:
                layers[f"relu{i}"] = nn.ReLU()
    return nn.Sequential(layers)


def cnn(channels: Sequence[int] = (16, 32), num_classes: int = 10, *, seed: int = 0) -> nn.Sequential:
    """[Conv3x3 -> BatchNorm -> ReLU] * len(channels) -> MaxPool2 -> Flatten -> Linear.

    Layer names: ``conv1``, ``bn1``, ``relu1``, ..., ``pool``, ``flatten``, ``fc``.
    On 8x8 inputs with padding 1 the feature maps stay 8x8 until the pool halves them to 4x4.
    """
    sizes = [1] + _sizes("channels", channels, nonempty=True)
    num_classes = check_int("num_classes", num_classes, 2)
    seed = check_seed("seed", seed)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, (c_in, c_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            layers[f"conv{i}"] = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
            layers[f"bn{i}"] = nn.BatchNorm2d(c_out)
            layers[f"relu{i}"] = nn.ReLU()
        layers["pool"] = nn.MaxPool2d(2)
        layers["flatten"] = nn.Flatten()
        layers["fc"] = nn.Linear(sizes[-1] * 4 * 4, num_classes)
    return nn.Sequential(layers)


def copy_model(model: nn.Module) -> nn.Module:
    """``copy.deepcopy`` that also works on a model pruned with ``torch.nn.utils.prune``.

    Pruning leaves ``weight = weight_orig * weight_mask`` as a computed (non-leaf) tensor after
    the pruning call and after every forward pass with gradients on, and ``copy.deepcopy``
    refuses non-leaf tensors. The masked weights are recomputed without gradients first (the
    same values), then the model is copied.
    """
    check_module("model", model)
    with torch.no_grad():
        for module in model.modules():
            for hook in module._forward_pre_hooks.values():
                if isinstance(hook, prune.BasePruningMethod):
                    setattr(module, hook._tensor_name, hook.apply_mask(module))
    return copy.deepcopy(model)


def dense_copy(model: nn.Module) -> nn.Module:
    """:func:`copy_model`, then every ``torch.nn.utils.prune`` mask of the copy made permanent
    (``prune.remove``: ``weight = weight_orig * weight_mask`` becomes a plain parameter holding the
    zeros). ``model`` itself keeps its masks and hooks."""
    new = copy_model(model)
    for module in new.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
    return new


# --- a small decoder-only transformer (chapters 9 and 10) ----------------------------------
#
# GPT-2's shape (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners"),
# after nanoGPT's model.py: token + position embeddings, pre-LayerNorm blocks
#     x = x + attn(ln1(x));   x = x + mlp(ln2(x))
# with causal multi-head self-attention (Vaswani et al. 2017, arXiv:1706.03762, Eq. (1):
# softmax(Q K^T / sqrt(d_k)) V) and a GELU MLP of 4x width, a final LayerNorm and an output
# head tied to the token embedding (Press and Wolf 2017, arXiv:1608.05859).
#
# q, k, v and proj are separate nn.Linear layers so that a scale can be folded from ln1 into
# q, k and v alike (AWQ, SmoothQuant) and a head is a plain slice: rows h*head_dim:(h+1)*head_dim
# of q, k and v and the same columns of proj. The number of heads is read from q's width, so
# removing a head is slicing those four layers.
#
# The widths. With d_model = 128, every layer but fc2 (in 512) has 128 inputs, so a quantization
# group of 128 IS per-channel on q, k, v, proj, fc1 and the tied embedding / head; groups of 32
# and 64 split each row into 4 or 2 groups everywhere. In a 4096-wide LLM, g128 is 1/32 of a row:
# here g32 is the comparable choice (1/4 of a row), and g128 differs from per-channel only on fc2.
# A model with d_model = 256 would make g128 mean something on every layer, but costs 4x the
# compute and does not train in the 10 minutes on 2 cores that the build is allowed.

@dataclass(frozen=True)
class TinyLMConfig:
    """Sizes of :class:`TinyLM`. ``vocab_size`` 256: one token per byte."""

    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    block_size: int = 256  # the longest context (position embeddings)
    vocab_size: int = 256
    mlp_ratio: int = 4

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_head", "d_model", "block_size", "vocab_size", "mlp_ratio"):
            check_int(name, getattr(self, name), 1)
        if self.d_model % self.n_head:
            raise ValueError(f"`d_model` must be a multiple of `n_head`={self.n_head}; got {self.d_model}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def num_parameters(self) -> int:
        """Parameters of :class:`TinyLM`, the tied head counted once."""
        d, h = self.d_model, self.mlp_ratio * self.d_model
        attn = 4 * (d * d + d)  # q, k, v, proj with biases
        mlp = (d * h + h) + (h * d + d)  # fc1, fc2
        block = 2 * (2 * d) + attn + mlp  # ln1, ln2 (weight and bias)
        return self.vocab_size * d + self.block_size * d + self.n_layer * block + 2 * d


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention, written out (no fused kernel) so a KV cache can be added."""

    def __init__(self, d_model: int, n_head: int) -> None:
        super().__init__()
        self.head_dim = d_model // n_head
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.proj = nn.Linear(d_model, d_model)

    @property
    def n_head(self) -> int:
        return self.q.out_features // self.head_dim

    def split_heads(self, t: torch.Tensor) -> torch.Tensor:
        B, T, _ = t.shape
        return t.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, hd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape  # (B, T, C)
        q, k, v = self.split_heads(self.q(x)), self.split_heads(self.k(x)), self.split_heads(self.v(x))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, H, T, T), Eq. (1) in Vaswani et al.
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        att = att.masked_fill(future, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, self.n_head * self.head_dim)  # (B, T, H*hd)
        return self.proj(y)


class MLP(nn.Module):
    """fc1 -> GELU -> fc2, ``mlp_ratio`` times wider in the middle."""

    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, hidden)
        self.gelu = nn.GELU()
        self.fc2 = nn.Linear(hidden, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln1(x)), then + mlp(ln2(x))."""

    def __init__(self, config: TinyLMConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config.d_model, config.n_head)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config.d_model, config.mlp_ratio * config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyLM(nn.Module):
    """A byte-level decoder-only transformer: ids (B, T) -> next-byte logits (B, T, vocab_size).

    Names: ``tok_emb``, ``pos_emb``, ``blocks[i].{ln1, attn.{q, k, v, proj}, ln2, mlp.{fc1, fc2}}``,
    ``ln_f``, ``head`` (``head.weight`` IS ``tok_emb.weight``: one tensor, counted once).
    """

    def __init__(self, config: TinyLMConfig, *, seed: int = 0) -> None:
        super().__init__()
        check_type("config", config, TinyLMConfig)
        self.config = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(check_seed("seed", seed))
            self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
            self.pos_emb = nn.Embedding(config.block_size, config.d_model)
            self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
            self.ln_f = nn.LayerNorm(config.d_model)
            self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
            self.head.weight = self.tok_emb.weight  # weight tying
            self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer)."""
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif ".ln" in name or name.startswith("ln_f"):
                nn.init.ones_(p)
            else:
                std = 0.02 / math.sqrt(2 * self.config.n_layer) if name.endswith(("proj.weight", "fc2.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if not isinstance(idx, torch.Tensor) or idx.dtype != torch.int64 or idx.dim() != 2:
            raise TypeError(f"`idx` must be an int64 tensor of shape (B, T); got {_show_tensor(idx)}")
        B, T = idx.shape
        if not 1 <= T <= self.config.block_size:
            raise ValueError(f"`idx` must have 1 to block_size={self.config.block_size} positions; got {T}")
        pos = torch.arange(T, device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))  # (B, T, vocab)


def _show_tensor(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"dtype {value.dtype} and shape {tuple(value.shape)}"
    return type(value).__name__


def tiny_lm(config: TinyLMConfig | None = None, *, seed: int = 0) -> TinyLM:
    """A freshly initialised :class:`TinyLM` (default: 4 layers, 4 heads, d_model 128, context 256)."""
    return TinyLM(TinyLMConfig() if config is None else config, seed=seed)


TINY_LM_CONFIGS = {
    "main": TinyLMConfig(n_layer=4, n_head=4, d_model=128),
    "draft": TinyLMConfig(n_layer=2, n_head=2, d_model=64),  # for speculative decoding
}
TINY_LM_FILES = {name: f"tiny_lm_{name}.pt" for name in TINY_LM_CONFIGS}


def load_tiny_lm(name: str = "main", directory: str | None = None) -> TinyLM:
    """The course's trained language model (``"main"``) or its draft (``"draft"``), in eval mode.

    Built by ``datasets/build_lm.py``; the file is checked against ``datasets/SHA256SUMS``
    before it is read (a missing or corrupt file raises an error naming it), and read with
    ``torch.load(..., weights_only=True)``.
    """
    from compresskit.data import _verified_path

    check_choice("name", name, list(TINY_LM_CONFIGS))
    path = _verified_path(TINY_LM_FILES[name], directory)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = TinyLM(TINY_LM_CONFIGS[name])
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise ValueError(f"data file {path} does not hold a {name!r} TinyLM ({TINY_LM_CONFIGS[name]}): {exc}") from exc
    return model.eval()
