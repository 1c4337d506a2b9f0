"""Generation with a key-value cache, and KIVI's int8 / int4 key-value cache.

A decoder computes, at every layer, keys and values for every position it has seen. Without a
cache, generating token t+1 runs the whole sequence 0..t through the model again; with one, each
layer keeps the keys and values of positions 0..t-1 and only the new position is computed:

    K_{0..t} = [K_{0..t-1}; k_t],   V_{0..t} = [V_{0..t-1}; v_t]                        (1)
    y_t = softmax(q_t K_{0..t}^T / sqrt(d_k)) V_{0..t}                                  (2)

(Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762, Eq. (1); here Eq. (2)). The
cache costs, per token,

    bytes per token = n_layer x 2 x n_head x head_dim x bytes per element               (3)

KIVI [1] stores the cache in 2 to 8 bits. Its finding: keys have a few outlier *channels*, values
do not, so keys are quantized per channel (one scale and zero point per channel, over a group of
G tokens along the sequence) and values per token (one per token, over its channels). Both use
asymmetric min/max integer codes with b bits:

    s = (max X - min X) / (2^b - 1),   z = min X,                                       (4)
    Q(X) = clamp(round((X - z) / s), 0, 2^b - 1),   X^ = Q(X) s + z                      (5)

with min/max over the G tokens of each channel for keys and over the channels of each token
for values. Keys cannot be quantized per channel before their group of G tokens is complete, so
the newest tokens (fewer than G: the residual) stay in float until the group fills ([1], Sec. 3.3,
Algorithm 1). Per token and head the quantized part costs b hd / 8 bytes for each of keys and
values, plus fp16 (s, z): 4 bytes per channel per G tokens for keys, 4 bytes per token for values:

    bytes per token = n_layer x n_head x (2 ceil(b hd / 8) + 4 hd / G + 4)              (6)

Our KIVI, simplified where the course's model allows: KIVI's code quantizes keys once R
tokens (a multiple of G) are waiting, and keeps the last R values in float as a sliding window;
here R = G for both, so keys and values share one float residual of len % G tokens. KIVI groups
a value token's channels in groups of G; here one group per token (head_dim = 32 <= G = 32 in
the course's model, so the same thing). Scales and zero points are fp16, as KIVI's for its fp16
models; int4 codes are packed two per byte. The cached forward runs in float32 on the
dequantized keys and values (KIVI fuses dequantization into its matmul kernels).

[1] Z. Liu, J. Yuan, H. Jin, S. Zhong, Z. Xu, V. Braverman, B. Chen, X. Hu, "KIVI: A Tuning-Free
    Asymmetric 2bit Quantization for KV Cache", ICML 2024, arXiv:2402.02750.
"""

from __future__ import annotations

import math
import contextlib
import statistics
import time
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from compresskit._validation import check_choice, check_int, check_module, check_tensor, check_type
from compresskit.llm.groupwise import pack_int4, unpack_int4
from compresskit.models import TinyLM, TinyLMConfig
from compresskit.text import check_ids, encode

__all__ = [
    "KVCache",
    "QuantizedKVCache",
    "decode_times",
    "forward_cached",
    "generate_cached",
    "growth_exponent",
    "kivi_bytes_per_token",
    "kivi_dequantize",
    "kivi_quantize",
    "kv_bytes_per_token",
    "kv_quantized_perplexity",
    "new_cache",
    "new_quantized_cache",
]

KIVI_BITS = (4, 8)


# --- the float cache ---------------------------------------------------------------------------

class KVCache:
    """Keys and values of every layer, each (B, H, T, hd) float: Eq. (1).

    ``keys[i]`` / ``values[i]`` are None until the first :meth:`append`. ``len(cache)`` is the
    number of positions held; :meth:`crop` keeps the first ``n`` (speculative decoding's rollback);
    :meth:`nbytes` counts the bytes of the tensors held.
    """

    def __init__(self, n_heads: Sequence[int], head_dim: int, block_size: int) -> None:
        check_type("n_heads", n_heads, (list, tuple), "a list of ints (heads per layer)")
        if not n_heads:
            raise ValueError("`n_heads` must list the heads of at least one layer; got an empty list")
        self.n_heads = [check_int(f"n_heads[{i}]", h, 1) for i, h in enumerate(n_heads)]
        self.head_dim = check_int("head_dim", head_dim, 1)
        self.block_size = check_int("block_size", block_size, 1)
        self.keys: list[torch.Tensor | None] = [None] * len(self.n_heads)
        self.values: list[torch.Tensor | None] = [None] * len(self.n_heads)

    @property
    def n_layer(self) -> int:
        return len(self.n_heads)

    @property
    def batch_size(self) -> int | None:
        return None if self.keys[0] is None else self.keys[0].shape[0]

    def __len__(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_layer={self.n_layer}, n_heads={self.n_heads}, head_dim={self.head_dim}, len={len(self)})"

    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``i``'s keys and values as float tensors (B, H, T, hd)."""
        i = check_int("i", i, 0, self.n_layer - 1)
        if self.keys[i] is None:
            raise ValueError("`cache` must hold at least one position to read a layer; got an empty cache")
        return self.keys[i], self.values[i]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._tensors())

    def _tensors(self) -> list[torch.Tensor]:
        return [t for t in (*self.keys, *self.values) if t is not None]

    def _check_new(self, name: str, k: torch.Tensor, layer: int) -> None:
        """Refuse new keys/values ``k`` (B, H, T_new, hd) that do not fit layer ``layer``."""
        want_b = self.batch_size
        shape = (k.shape[0] if want_b is None and k.dim() == 4 else want_b or "B", self.n_heads[layer],
                 k.shape[2] if k.dim() == 4 else "T_new", self.head_dim)
        if k.dim() != 4 or tuple(k.shape) != shape or not k.is_floating_point():
            raise ValueError(f"`{name}` must be a float tensor of shape (B, H, T_new, hd) = {shape} for layer {layer}; "
                             f"got shape {tuple(k.shape)} and dtype {k.dtype}")
        if len(self) + k.shape[2] > self.block_size:
            raise ValueError(f"`cache` positions must stay within block_size={self.block_size}; "
                             f"got {len(self)} cached + {k.shape[2]} new")

    def append(self, keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> None:
        """Append one (B, H, T_new, hd) tensor of keys and of values per layer; all or nothing."""
        for name, ts in (("keys", keys), ("values", values)):
            if not isinstance(ts, (list, tuple)) or len(ts) != self.n_layer:
                got = f"{len(ts)} items" if isinstance(ts, (list, tuple)) else type(ts).__name__
                raise ValueError(f"`{name}` must be a list of {self.n_layer} tensors (one per layer); got {got}")
            for i, t in enumerate(ts):
                check_type(f"{name}[{i}]", t, torch.Tensor)
                self._check_new(f"{name}[{i}]", t, i)
                if t.shape[2] != keys[0].shape[2] or t.shape[0] != keys[0].shape[0]:
                    raise ValueError(f"`{name}[{i}]` must have as many rows and positions as `keys[0]` "
                                     f"{tuple(keys[0].shape[:3])}; got {tuple(t.shape)}")
        self._commit([self._extend(i, k, v)[2] for i, (k, v) in enumerate(zip(keys, values))])

    def crop(self, n: int) -> None:
        """Keep the first ``n`` positions of every layer (0 <= n <= len)."""
        n = check_int("n", n, 0, len(self))
        if n == 0:
            self.keys, self.values = [None] * self.n_layer, [None] * self.n_layer
            return
        self.keys = [k[:, :, :n].clone() for k in self.keys]  # (B, H, n, hd); a clone, since a view
        self.values = [v[:, :, :n].clone() for v in self.values]  # would keep the whole storage alive

    # forward_cached extends every layer first and commits at the end, so a failed call changes nothing
    def _extend(self, i: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Any]:
        k = k.detach().float()
        v = v.detach().float()
        if self.keys[i] is not None:
            k, v = torch.cat([self.keys[i], k], dim=2), torch.cat([self.values[i], v], dim=2)  # Eq. (1)
        return k, v, (k, v)

    def _commit(self, states: list[Any]) -> None:
        self.keys = [s[0] for s in states]
        self.values = [s[1] for s in states]


def _check_lm(model: Any) -> TinyLM:
    check_module("model", model)
    if not isinstance(model, TinyLM):
        raise TypeError(f"`model` must be a compresskit.models.TinyLM (tok_emb, pos_emb, blocks[i].attn.q/k/v/proj, "
                        f"ln_f, head); got {type(model).__name__}")
    return model


def _layer_heads(model: TinyLM) -> list[int]:
    """Heads per layer, read from q's width (a model with heads removed has fewer)."""
    return [block.attn.q.weight.shape[0] // block.attn.head_dim for block in model.blocks]


def new_cache(model: TinyLM) -> KVCache:
    """An empty :class:`KVCache` for ``model`` (its heads per layer, head_dim and block_size)."""
    model = _check_lm(model)
    return KVCache(_layer_heads(model), model.blocks[0].attn.head_dim, model.pos_emb.num_embeddings)


def kv_bytes_per_token(config_or_model: TinyLMConfig | TinyLM, bytes_per_element: int = 4) -> int:
    """Eq. (3): n_layer x 2 x n_head x head_dim x bytes, summed over layers for a model whose
    layers lost heads; per sequence (multiply by the batch size)."""
    check_type("config_or_model", config_or_model, (TinyLMConfig, TinyLM), "a TinyLMConfig or TinyLM")
    bytes_per_element = check_int("bytes_per_element", bytes_per_element, 1)
    if isinstance(config_or_model, TinyLMConfig):
        c = config_or_model
        return c.n_layer * 2 * c.n_head * c.head_dim * bytes_per_element  # Eq. (3)
    head_dim = config_or_model.blocks[0].attn.head_dim
    return sum(2 * h * head_dim * bytes_per_element for h in _layer_heads(config_or_model))  # Eq. (3)


# --- the cached forward --------------------------------------------------------------------------

def _check_idx(model: TinyLM, idx: Any, cache: Any) -> torch.Tensor:
    if not isinstance(idx, torch.Tensor) or idx.dtype != torch.int64 or idx.dim() != 2 or idx.numel() == 0:
        shown = f"dtype {idx.dtype} and shape {tuple(idx.shape)}" if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise TypeError(f"`idx` must be a non-empty int64 tensor of shape (B, T_new); got {shown}")
    vocab = model.tok_emb.num_embeddings
    if int(idx.min()) < 0 or int(idx.max()) >= vocab:
        raise ValueError(f"`idx` must hold token ids in [0, {vocab - 1}]; got values in [{int(idx.min())}, {int(idx.max())}]")
    check_type("cache", cache, KVCache, "a KVCache or QuantizedKVCache (from new_cache / new_quantized_cache)")
    if cache.n_heads != _layer_heads(model) or cache.head_dim != model.blocks[0].attn.head_dim:
        raise ValueError(f"`cache` must be made for `model` (heads per layer {_layer_heads(model)}, head_dim "
                         f"{model.blocks[0].attn.head_dim}); got heads {cache.n_heads}, head_dim {cache.head_dim}")
    if cache.batch_size is not None and idx.shape[0] != cache.batch_size:
        raise ValueError(f"`idx` must have the cache's batch size B={cache.batch_size}; got B={idx.shape[0]}")
    block_size = model.pos_emb.num_embeddings
    if len(cache) + idx.shape[1] > block_size:
        raise ValueError(f"`idx` positions must stay within block_size={block_size} (learned position embeddings: "
                         f"no sliding window); got {len(cache)} cached + {idx.shape[1]} new = {len(cache) + idx.shape[1]}")
    return idx


def _split(t: torch.Tensor, head_dim: int) -> torch.Tensor:
    B, T, C = t.shape
    return t.view(B, T, C // head_dim, head_dim).transpose(1, 2)  # (B, H, T, hd)


def _cached_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int) -> torch.Tensor:
    """Eq. (2): new queries (B, H, T_new, hd) at positions start.. against all keys (B, H, T, hd)."""
    T_new, T = q.shape[2], k.shape[2]
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (B, H, T_new, T)
    future = torch.arange(T, device=q.device)[None, :] > torch.arange(start, start + T_new, device=q.device)[:, None]
    return att.masked_fill(future, float("-inf")).softmax(dim=-1) @ v  # (B, H, T_new, hd)


@torch.no_grad()
def forward_cached(model: TinyLM, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Logits (B, T_new, vocab) for new tokens ``idx`` (B, T_new) at positions len(cache)..; their
    keys and values are appended to ``cache``. Equals ``model(all ids)[:, -T_new:]`` within float
    error. Runs the model's own modules (pruning hooks, removed heads included), without gradients;
    a refused call leaves ``cache`` as it was."""
    model = _check_lm(model)
    idx = _check_idx(model, idx, cache)
    start = len(cache)
    pos = torch.arange(start, start + idx.shape[1], device=idx.device)
    x = model.tok_emb(idx) + model.pos_emb(pos)  # (B, T_new, C)
    states = []
    for i, block in enumerate(model.blocks):
        attn, h = block.attn, block.ln1(x)
        q, k, v = (_split(f(h), attn.head_dim) for f in (attn.q, attn.k, attn.v))  # (B, H, T_new, hd)
        K, V, state = cache._extend(i, k, v)  # (B, H, T, hd): Eq. (1)
        states.append(state)
        y = _cached_attention(q, K.to(q.dtype), V.to(q.dtype), start)  # (B, H, T_new, hd): Eq. (2)
        x = x + attn.proj(y.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))
        x = x + block.mlp(block.ln2(x))
    cache._commit(states)
    return model.head(model.ln_f(x))  # (B, T_new, vocab)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside; every module's own mode given back after (not just the top one's)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _prompt_ids(model: TinyLM, prompt: Any, n: Any) -> tuple[torch.Tensor, int]:
    ids = prompt if isinstance(prompt, torch.Tensor) else encode(prompt) if isinstance(prompt, (str, bytes)) else prompt
    ids = check_ids("prompt", ids)
    n = check_int("n", n, 0)
    block_size = model.pos_emb.num_embeddings
    if ids.numel() + n > block_size:
        raise ValueError(f"`n` must keep prompt + n within block_size={block_size}; got {ids.numel()} + {n} = {ids.numel() + n}")
    return ids, n


def generate_cached(model: TinyLM, prompt: str | bytes | torch.Tensor, n: int) -> torch.Tensor:
    """``prompt`` followed by ``n`` greedy new ids (1-D int64): the prompt in one cached forward,
    then one token at a time. Token for token :func:`compresskit.text.generate`'s greedy output
    when prompt + n <= block_size. Run in eval mode; the model's mode is given back."""
    model = _check_lm(model)
    ids, n = _prompt_ids(model, prompt, n)
    with _eval_mode(model):
        cache, out, nxt = new_cache(model), [ids], ids[None]  # (1, T)
        for _ in range(n):
            nxt = forward_cached(model, nxt, cache)[:, -1].argmax(-1, keepdim=True)  # (1, 1)
            out.append(nxt[0])
    return torch.cat(out)


# --- time per token against sequence length ------------------------------------------------------

def _check_lengths(model: TinyLM, lengths: Any) -> list[int]:
    check_type("lengths", lengths, (list, tuple), "a list of ints")
    if not lengths:
        raise ValueError("`lengths` must hold at least one length; got an empty list")
    block_size = model.pos_emb.num_embeddings
    return [check_int(f"lengths[{i}]", n, 1, block_size) for i, n in enumerate(lengths)]


@torch.no_grad()
def decode_times(model: TinyLM, lengths: Sequence[int], cached: bool, repeats: int = 5, *, seed: int = 0) -> list[float]:
    """Seconds to produce the next token when the sequence holds ``n`` tokens, for each n in
    ``lengths`` (median of ``repeats``). Cached: one :func:`forward_cached` step on a cache of
    n - 1 positions (filled untimed); uncached: ``model`` on all n ids, as
    :func:`compresskit.text.generate` does. Random ids from ``seed``; never asserted in tests."""
    model = _check_lm(model)
    lengths = _check_lengths(model, lengths)
    check_type("cached", cached, bool)
    repeats = check_int("repeats", repeats, 1)
    ids = torch.randint(0, model.tok_emb.num_embeddings, (1, max(lengths)), generator=torch.Generator().manual_seed(seed))
    with _eval_mode(model):
        return [_time_one(model, ids[:, :n], cached, repeats) for n in lengths]


def _time_one(model: TinyLM, ids: torch.Tensor, cached: bool, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):  # the first run warms up
        cache = new_cache(model)
        if cached and ids.shape[1] > 1:
            forward_cached(model, ids[:, :-1], cache)
        t0 = time.perf_counter()
        forward_cached(model, ids[:, -1:], cache) if cached else model(ids)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def growth_exponent(lengths: Sequence[float], times: Sequence[float]) -> float:
    """Slope p of the least-squares line log t = p log n + c: time per token grows like n^p. Per
    token, p near 0 means total generation time linear in length (the cache), p near 1 quadratic."""
    check_type("lengths", lengths, (list, tuple), "a list of numbers")
    check_type("times", times, (list, tuple), "a list of numbers")
    if len(lengths) != len(times) or len(set(lengths)) < 2:
        raise ValueError(f"`lengths` and `times` must have the same length and at least 2 distinct lengths; "
                         f"got {len(lengths)} lengths ({len(set(lengths))} distinct) and {len(times)} times")
    if min(lengths) <= 0 or min(times) <= 0:
        raise ValueError(f"`lengths` and `times` must be positive; got min length {min(lengths)}, min time {min(times)}")
    x = torch.tensor([math.log(n) for n in lengths], dtype=torch.float64)
    y = torch.tensor([math.log(t) for t in times], dtype=torch.float64)
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc * xc).sum())


# --- KIVI: keys per channel, values per token ----------------------------------------------------

def _check_bits(bits: Any) -> int:
    check_int("bits", bits)
    return check_choice("bits", bits, KIVI_BITS)


def kivi_quantize(x: torch.Tensor, bits: int, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eqs. (4)-(5): asymmetric b-bit codes of ``x`` with one (scale, zero point) per slice along
    ``dim`` (min/max over ``dim``). Returns codes (uint8, same shape as ``x``), scale and zero
    point (fp16, ``dim`` kept with size 1); the codes are computed against the fp16 values kept."""
    bits = _check_bits(bits)
    check_type("x", x, torch.Tensor)
    if not x.is_floating_point() or x.numel() == 0:
        raise ValueError(f"`x` must be a non-empty float tensor; got dtype {x.dtype} and shape {tuple(x.shape)}")
    dim = check_int("dim", dim, -x.dim(), x.dim() - 1)
    qmax = 2 ** bits - 1
    lo, hi = x.amin(dim, keepdim=True), x.amax(dim, keepdim=True)
    zero_point = lo.half()  # Eq. (4): z = min X
    scale = ((hi - lo) / qmax).clamp_min(2.0 ** -14).half()  # Eq. (4); floor: fp16's smallest normal
    codes = ((x - zero_point.float()) / scale.float()).round().clamp(0, qmax)  # Eq. (5)
    return codes.to(torch.uint8), scale, zero_point


def kivi_dequantize(codes: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """Eq. (5): X^ = Q s + z, float32 (``scale`` and ``zero_point`` broadcast against ``codes``)."""
    check_tensor("codes", codes)
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise TypeError(f"`codes` must be an integer tensor (uint8 from kivi_quantize); got dtype {codes.dtype}")
    for name, t in (("scale", scale), ("zero_point", zero_point)):
        check_tensor(name, t, floating=True)
        try:
            torch.broadcast_shapes(codes.shape, t.shape)
        except RuntimeError:
            raise ValueError(f"`{name}` must broadcast against `codes` {tuple(codes.shape)}; got shape {tuple(t.shape)}") from None
    return codes.float() * scale.float() + zero_point.float()


def _fake_keys(k: torch.Tensor, bits: int, G: int) -> torch.Tensor:
    """Keys (B, H, T, hd) with every complete group of G tokens quantized per channel and back."""
    B, H, T, hd = k.shape
    n = T // G * G
    groups = k[:, :, :n].reshape(B, H, n // G, G, hd)  # (B, H, groups, G, hd)
    deq = kivi_dequantize(*kivi_quantize(groups, bits, dim=3)).reshape(B, H, n, hd)  # min/max over the G tokens
    return torch.cat([deq, k[:, :, n:]], dim=2)


def _fake_values(v: torch.Tensor, bits: int, G: int) -> torch.Tensor:
    """Values (B, H, T, hd) with the tokens of every complete group quantized per token and back."""
    n = v.shape[2] // G * G
    deq = kivi_dequantize(*kivi_quantize(v[:, :, :n], bits, dim=3))  # min/max over each token's hd channels
    return torch.cat([deq, v[:, :, n:]], dim=2)


class QuantizedKVCache(KVCache):
    """KIVI's cache [1]: complete groups of ``group_size`` tokens held as b-bit codes (keys per
    channel, values per token, Eqs. (4)-(5); int4 packed two per byte along hd) with fp16 scales
    and zero points; the newest len % group_size tokens in float (the residual).

    ``keys[i]`` / ``values[i]`` hold the float residual. :meth:`layer` gives the dequantized
    keys and values. :meth:`crop` into a quantized group turns the kept positions of that group
    into float residual (dequantized values: re-quantized with new statistics when it fills again).
    """

    def __init__(self, n_heads: Sequence[int], head_dim: int, block_size: int, bits: int, group_size: int = 32) -> None:
        super().__init__(n_heads, head_dim, block_size)
        self.bits = _check_bits(bits)
        self.group_size = check_int("group_size", group_size, 1, self.block_size)
        # per layer: (k_codes, k_scale, k_zero, v_codes, v_scale, v_zero) or None
        self.quantized: list[tuple[torch.Tensor, ...] | None] = [None] * self.n_layer

    def _n_quantized(self, i: int = 0) -> int:
        return 0 if self.quantized[i] is None else self.quantized[i][4].shape[2]

    @property
    def batch_size(self) -> int | None:
        for t in (self.keys[0], None if self.quantized[0] is None else self.quantized[0][0]):
            if t is not None:
                return t.shape[0]
        return None

    def __len__(self) -> int:
        return self._n_quantized() + (0 if self.keys[0] is None else self.keys[0].shape[2])

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", bits={self.bits}, group_size={self.group_size}, quantized={self._n_quantized()})"

    def _tensors(self) -> list[torch.Tensor]:
        return super()._tensors() + [t for q in self.quantized if q is not None for t in q]

    def _pack(self, codes: torch.Tensor) -> torch.Tensor:
        return pack_int4(codes) if self.bits == 4 else codes  # (B, H, T, ceil(hd / 2)) for int4

    def _unpack(self, codes: torch.Tensor) -> torch.Tensor:
        return unpack_int4(codes, self.head_dim).to(torch.uint8) if self.bits == 4 else codes

    def _dequantized(self, q: tuple[torch.Tensor, ...] | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        if q is None:
            return None
        kc, ks, kz, vc, vs, vz = q
        B, H, T, _ = vs.shape
        G, hd = self.group_size, self.head_dim
        k = kivi_dequantize(self._unpack(kc).reshape(B, H, T // G, G, hd), ks, kz).reshape(B, H, T, hd)
        return k, kivi_dequantize(self._unpack(vc), vs, vz)  # (B, H, T, hd) each

    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = check_int("i", i, 0, self.n_layer - 1)
        if len(self) == 0:
            raise ValueError("`cache` must hold at least one position to read a layer; got an empty cache")
        parts = [p for p in (self._dequantized(self.quantized[i]), (self.keys[i], self.values[i])) if p is not None and p[0] is not None]
        return torch.cat([p[0] for p in parts], dim=2), torch.cat([p[1] for p in parts], dim=2)

    def _quantize_groups(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Complete groups k, v (B, H, n G, hd) -> packed codes and fp16 (scale, zero point)."""
        B, H, T, hd = k.shape
        kc, ks, kz = kivi_quantize(k.reshape(B, H, T // self.group_size, self.group_size, hd), self.bits, dim=3)  # per channel
        vc, vs, vz = kivi_quantize(v, self.bits, dim=3)  # per token
        return self._pack(kc.reshape(B, H, T, hd)), ks, kz, self._pack(vc), vs, vz

    def _extend(self, i: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Any]:
        k_res, v_res, _ = super()._extend(i, k, v)  # residual + new, float (B, H, R + T_new, hd)
        n = k_res.shape[2] // self.group_size * self.group_size
        q = self.quantized[i]
        if n:  # Algorithm 1 in [1]: a group is quantized once it is complete
            new = self._quantize_groups(k_res[:, :, :n], v_res[:, :, :n])
            q = new if q is None else tuple(torch.cat([a, b], dim=2) for a, b in zip(q, new))
            k_res, v_res = k_res[:, :, n:], v_res[:, :, n:]
        deq = self._dequantized(q)
        K = k_res if deq is None else torch.cat([deq[0], k_res], dim=2)  # (B, H, T, hd)
        V = v_res if deq is None else torch.cat([deq[1], v_res], dim=2)
        keep = k_res.shape[2] > 0
        return K, V, (k_res if keep else None, v_res if keep else None, q)

    def _commit(self, states: list[Any]) -> None:
        self.keys = [s[0] for s in states]
        self.values = [s[1] for s in states]
        self.quantized = [s[2] for s in states]

    def crop(self, n: int) -> None:
        n = check_int("n", n, 0, len(self))
        nq = self._n_quantized()
        if n >= nq:
            keep = n - nq
            self.keys = [None if keep == 0 else k[:, :, :keep].clone() for k in self.keys]
            self.values = [None if keep == 0 else v[:, :, :keep].clone() for v in self.values]
            return
        g = n // self.group_size * self.group_size  # groups kept whole; the rest of n back to float
        layers = [self.layer(i) for i in range(self.n_layer)]
        self.keys = [None if g == n else K[:, :, g:n].clone() for K, _ in layers]
        self.values = [None if g == n else V[:, :, g:n].clone() for _, V in layers]
        self.quantized = [None if g == 0 else self._slice(q, g) for q in self.quantized]

    def _slice(self, q: tuple[torch.Tensor, ...], g: int) -> tuple[torch.Tensor, ...]:
        kc, ks, kz, vc, vs, vz = q
        ng = g // self.group_size
        return (kc[:, :, :g].clone(), ks[:, :, :ng].clone(), kz[:, :, :ng].clone(),
                vc[:, :, :g].clone(), vs[:, :, :g].clone(), vz[:, :, :g].clone())


def new_quantized_cache(model: TinyLM, bits: int, group_size: int = 32) -> QuantizedKVCache:
    """An empty :class:`QuantizedKVCache` (KIVI, int8 or int4) for ``model``."""
    model = _check_lm(model)
    return QuantizedKVCache(_layer_heads(model), model.blocks[0].attn.head_dim, model.pos_emb.num_embeddings, bits, group_size)


def kivi_bytes_per_token(config_or_model: TinyLMConfig | TinyLM, bits: int, group_size: int = 32) -> float:
    """Eq. (6): bytes per token of the quantized part of a :class:`QuantizedKVCache` (complete
    groups), per sequence; the float residual costs :func:`kv_bytes_per_token` per token."""
    check_type("config_or_model", config_or_model, (TinyLMConfig, TinyLM), "a TinyLMConfig or TinyLM")
    bits = _check_bits(bits)
    group_size = check_int("group_size", group_size, 1)
    if isinstance(config_or_model, TinyLMConfig):
        heads, hd = [config_or_model.n_head] * config_or_model.n_layer, config_or_model.head_dim
    else:
        heads, hd = _layer_heads(config_or_model), config_or_model.blocks[0].attn.head_dim
    per_head = 2 * -(-bits * hd // 8) + 4 * hd / group_size + 4  # Eq. (6): codes, key (s, z) per channel per group, value (s, z) per token
    return sum(heads) * per_head


# --- perplexity with a quantized cache, one forward per window -----------------------------------

def _kivi_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bits: int, G: int) -> torch.Tensor:
    """What query t sees when a QuantizedKVCache has streamed positions 0..t: key/value s is the
    quantized one iff s < floor((t + 1) / G) G (its group was complete), else the float one.

    Both copies go in, keys [quantized; float] (B, H, 2T, hd), and the mask lets query t see
    exactly one copy of each s <= t; one fused attention call (torch's scaled_dot_product_attention).
    """
    T = q.shape[2]
    kq, vq = _fake_keys(k, bits, G), _fake_values(v, bits, G)  # (B, H, T, hd)
    t, s = torch.arange(T)[:, None], torch.arange(T)[None, :]
    complete = (t + 1) // G * G  # (T, 1): positions quantized at step t
    allowed = torch.cat([s < complete, (s >= complete) & (s <= t)], dim=1)  # (T, 2T)
    return F.scaled_dot_product_attention(q, torch.cat([kq, k], dim=2), torch.cat([vq, v], dim=2), attn_mask=allowed)


def _kivi_logits(model: TinyLM, idx: torch.Tensor, bits: int | None, G: int) -> torch.Tensor:
    x = model.tok_emb(idx) + model.pos_emb(torch.arange(idx.shape[1]))  # (B, T, C)
    for block in model.blocks:
        attn, h = block.attn, block.ln1(x)
        q, k, v = (_split(f(h), attn.head_dim) for f in (attn.q, attn.k, attn.v))  # (B, H, T, hd)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True) if bits is None else _kivi_attention(q, k, v, bits, G)
        x = x + attn.proj(y.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))
        x = x + block.mlp(block.ln2(x))
    return model.head(model.ln_f(x))  # (B, T, vocab)


@torch.no_grad()
def kv_quantized_perplexity(model: TinyLM, ids: torch.Tensor, context: int, bits: int | None, group_size: int = 32) -> float:
    """exp(mean NLL per token) over non-overlapping windows of ``context`` (as
    :func:`compresskit.text.perplexity`), each window as if streamed token by token through a
    :class:`QuantizedKVCache` of ``bits`` (None: the float cache), computed in one forward per
    window: query t sees the keys and values the cache would hold at step t."""
    model = _check_lm(model)
    ids = check_ids("ids", ids, min_len=2)
    context = check_int("context", context, 1, model.pos_emb.num_embeddings)
    bits = None if bits is None else _check_bits(bits)
    group_size = check_int("group_size", group_size, 1, model.pos_emb.num_embeddings)
    with _eval_mode(model):
        total = _kivi_nll(model, ids, context, bits, group_size)
    return math.exp(total / (ids.numel() - 1))


def _kivi_nll(model: TinyLM, ids: torch.Tensor, context: int, bits: int | None, group_size: int) -> float:
    """Summed NLL (nats) over non-overlapping windows: the full ones in batches of 32, a shorter last one alone."""
    n = ids.numel() - 1
    full = list(range(0, n - context + 1, context))
    groups = [(context, full[i:i + 32]) for i in range(0, len(full), 32)] + ([(n % context, [n - n % context])] if n % context else [])
    total = 0.0
    for width, group in groups:
        if group:
            x = torch.stack([ids[s:s + width] for s in group])  # (B, T)
            y = torch.stack([ids[s + 1:s + width + 1] for s in group])
            logits = _kivi_logits(model, x, bits, group_size)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), y.reshape(-1), reduction="sum"))
    return total
