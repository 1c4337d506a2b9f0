"""Exercise checkers for the language-model inference chapter (chapter 10). Each ``check_*``
prints feedback and returns a bool.

What the instructions of chapters/10_llm_inference.ipynb ask, and these checkers hold to:

* ``kv_cache_bytes(n_layer, n_head, d_model, n_tokens, batch_size, bits)``: the bytes of the
  keys and values a decoder keeps for ``n_tokens`` positions of ``batch_size`` sequences, each
  element stored in ``bits`` bits: ``n_layer * 2 * n_head * head_dim * n_tokens * batch_size *
  bits / 8`` with ``head_dim = d_model // n_head`` (so ``n_head * head_dim = d_model``); every case
  gives whole bytes; an int, or a number equal to it.
* ``wanda_mask(W, X, sparsity)`` -> ``(score, mask)``: Wanda (Sun et al. 2023, "A Simple and
  Effective Pruning Approach for Large Language Models", arXiv:2306.11695), Eq. (1):
  ``S_ij = |W_ij| * ||X_j||_2``, the L2 norm of input feature j over the rows (tokens) of
  ``X`` (tokens, in_features); in each output row the ``int(sparsity * in_features)`` smallest
  scores are pruned (floored, as Wanda's code), equal scores pruned lower column first (a stable
  ascending sort); score in W's dtype, mask bool, True = kept, both (out, in).
* ``lora_forward(x, W, b, A, B, alpha)``: LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of
  Large Language Models", arXiv:2106.09685), Eq. (3): ``h = x Wᵀ + b + (alpha / r) x Aᵀ Bᵀ`` with
  ``A`` (r, in), ``B`` (out, r), ``r = A.shape[0]``; x of any leading shape; x's dtype.
* ``accept_draft(draft_tokens, target_logits)`` -> ``(n_accepted, next_token)``: one step of
  speculative decoding (Leviathan et al. 2023, arXiv:2211.17192; Chen et al. 2023,
  arXiv:2302.01318) for greedy decoding: row i of the target's (k + 1, vocab) logits predicts
  draft token i; draft tokens are accepted while they equal ``argmax`` (torch's: the first index
  of the maximum), and the next token is the target's choice at the first mismatch, or its
  bonus token from row k when all k are accepted; two ints.
* no function writes into its inputs.

The library computes these inside its own classes (``compresskit.llm.kv_cache``, ``wanda``,
``lora``, ``speculative``); the references here are plain torch, so a checker never depends on
them, and tests/test_exercises_inference.py holds each one against an answer written there.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from compresskit.course.checker import Case, Expected, check_function, close, naming_mistakes


def _exact_number(expected: Any, got: Any) -> str | None:
    """A count: equal exactly (an int, or a float or one-element tensor of the same value)."""
    return close(expected, got, rtol=0.0, atol=0.0)


def _in_dtype(expected: Any, got: Any) -> str | None:
    """Tensors of the expected dtype (bool stays bool, float64 stays float64) and close values:
    to float32's rounding for float32, tighter for float64."""
    if isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor) and got.dtype != expected.dtype:
        keep = " (keep the dtype of the input)" if expected.dtype.is_floating_point and got.dtype.is_floating_point else ""
        return f"dtype: expected {expected.dtype}{keep}, got {got.dtype}"
    if isinstance(expected, torch.Tensor) and expected.dtype == torch.float64:
        return close(expected, got, rtol=1e-9, atol=1e-12)
    return close(expected, got, rtol=1e-4, atol=1e-5)


def _items(names: tuple[str, ...], compare: Callable[[Any, Any], str | None]) -> Callable[[Any, Any], str | None]:
    """Compare tuples item by item and name the item that differs."""
    def compare_items(expected: tuple, got: Any) -> str | None:
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"return a tuple ({', '.join(names)}); got {type(got).__name__}"
        for name, e, g in zip(names, expected, got):
            reason = compare(e, g)
            if reason:
                return f"{name}: {reason}"
        return None
    return compare_items


def _randn(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --- 1. the KV cache's bytes ------------------------------------------------------------------

def _kv_bytes(n_layer: int, n_head: int, d_model: int, n_tokens: int, batch_size: int, bits: int, mistake: str = "") -> int:
    head_dim = d_model // n_head
    per_head = d_model if mistake == "heads_d_model" else head_dim  # n_head * head_dim = d_model
    tokens = n_tokens + {"tokens_minus_one": -1, "tokens_plus_one": 1}.get(mistake, 0)
    elements = ((1 if mistake == "no_layers" else n_layer) * (1 if mistake == "no_two" else 2) * n_head * per_head
                * tokens * (1 if mistake == "no_batch" else batch_size))
    return elements * bits if mistake == "bits" else elements * bits // 8


def reference_kv_cache_bytes(n_layer: int, n_head: int, d_model: int, n_tokens: int, batch_size: int, bits: int) -> Expected:
    args = (n_layer, n_head, d_model, n_tokens, batch_size, bits)
    return Expected(_kv_bytes(*args), tuple((_kv_bytes(*args, mistake), what) for mistake, what in (
        ("no_two", "the cache holds a key AND a value per token, head and layer: multiply by 2"),
        ("no_layers", "every layer keeps its own keys and values: multiply by n_layer"),
        ("heads_d_model", "the heads split d_model: n_head * head_dim = d_model numbers per token for K "
                          "(head_dim = d_model // n_head), not n_head * d_model"),
        ("bits", "bits, not bytes: divide bits by 8 (a float32 element takes 4 bytes)"),
        ("tokens_minus_one", "off by one: after n_tokens tokens the cache holds all n_tokens positions"),
        ("tokens_plus_one", "off by one: after n_tokens tokens the cache holds n_tokens positions, not n_tokens + 1"),
        ("no_batch", "each sequence of the batch has its own cache: multiply by batch_size"),
    )))


def check_kv_cache_bytes(fn: Callable[[int, int, int, int, int, int], int]) -> bool:
    """``fn(n_layer, n_head, d_model, n_tokens, batch_size, bits)`` -> bytes of the keys and values cached."""
    return check_function(fn, reference=reference_kv_cache_bytes, cases=[
        Case("the course's model (4 layers, 4 heads, d_model 128), 256 tokens, float32", (4, 4, 128, 256, 1, 32)),
        Case("its draft model (2 layers, 2 heads, d_model 64), 100 tokens, float32", (2, 2, 64, 100, 1, 32)),
        Case("the course's model, a batch of 3 sequences of 17 tokens, an int8 cache", (4, 4, 128, 17, 3, 8)),
        Case("the course's model, 5 sequences of 7 tokens, an int4 cache (KIVI)", (4, 4, 128, 7, 5, 4)),
        Case("6 layers, 8 heads, d_model 512, a batch of 8 of 1000 tokens, float16", (6, 8, 512, 1000, 8, 16)),
        Case("a 7B model's shape (32 layers, 32 heads, d_model 4096), 4096 tokens, float16", (32, 32, 4096, 4096, 1, 16)),
        Case("one layer, one head, d_model 16, one token, float32", (1, 1, 16, 1, 1, 32)),
    ], name="kv_cache_bytes", compare=naming_mistakes(_exact_number),
        hint="n_layer * 2 * n_head * (d_model // n_head) * n_tokens * batch_size * bits // 8")


# --- 2. one Wanda score and mask per output row ---------------------------------------------------

def _wanda_score(W: torch.Tensor, X: torch.Tensor, mistake: str = "") -> torch.Tensor:
    if mistake == "axis":
        norm = torch.linalg.vector_norm(X, dim=1)  # over features, one per token
    elif mistake == "squared":
        norm = (X * X).sum(dim=0)
    elif mistake == "mean_abs":
        norm = X.abs().mean(dim=0)
    else:
        norm = torch.linalg.vector_norm(X, dim=0)  # (in,): ||X_j||_2 over tokens
    return (W if mistake == "signed" else W.abs()) * norm[None, :]  # Eq. (1) in [Wanda]


def _prune_lowest(score: torch.Tensor, n_prune: int, dim: int = 1, descending: bool = False) -> torch.Tensor:
    """Mask (True = kept) pruning the ``n_prune`` lowest scores along ``dim``, ties lower index first
    (or, ``descending``, keeping the highest, ties lower index first)."""
    mask = torch.ones_like(score, dtype=torch.bool)
    order = torch.argsort(score, dim=dim, descending=descending, stable=True)
    size = score.shape[dim]
    pruned = order.narrow(dim, size - n_prune, n_prune) if descending else order.narrow(dim, 0, n_prune)
    return mask.scatter(dim, pruned, False)


def _wanda_mask(score: torch.Tensor, sparsity: float, mistake: str = "") -> torch.Tensor:
    out, n = score.shape
    n_prune = int(sparsity * n)  # floored, as Wanda's code
    if mistake == "round":
        n_prune = n - int((1 - sparsity) * n)  # the kept count floored
    if mistake == "global":
        return _prune_lowest(score.reshape(1, -1), n_prune * out).reshape(out, n)
    if mistake == "columns":
        return _prune_lowest(score, int(sparsity * out), dim=0)
    if mistake == "smallest":
        return ~_prune_lowest(score, n - n_prune)  # keeps the n - n_prune smallest
    if mistake == "ties_kept_first":
        return _prune_lowest(score, n_prune, descending=True)
    if mistake == "threshold":
        if n_prune == 0:
            return torch.ones_like(score, dtype=torch.bool)
        return score > score.sort(dim=1).values[:, n_prune - 1 : n_prune]  # every tie of the threshold pruned
    mask = _prune_lowest(score, n_prune)
    return ~mask if mistake == "inverted" else mask


def reference_wanda_mask(W: torch.Tensor, X: torch.Tensor, sparsity: float) -> Expected:
    score = _wanda_score(W, X)
    mistakes = []
    for mistake, what in (
        ("axis", "the norm runs over the TOKENS (dim 0 of X), one per input feature j: X.norm(dim=0), shape (in_features,)"),
        ("squared", "use the L2 norm ||X_j||_2 = sqrt(sum of squares over tokens), not its square"),
        ("mean_abs", "use the L2 norm over tokens, not the mean of |x|"),
        ("signed", "the score uses |W|, the weight's magnitude, not its signed value"),
    ):
        if mistake != "axis" or X.shape[0] == W.shape[1]:
            wrong = _wanda_score(W, X, mistake)
            mistakes.append(((wrong, _wanda_mask(wrong, sparsity)), what))
    for mistake, what in (
        ("global", "compare scores within each output ROW, not over the whole matrix: every row loses the same number"),
        ("columns", "compare within each output row (dim 1, the inputs of one output), not within each column"),
        ("smallest", "keep the LARGEST scores and prune the smallest"),
        ("inverted", "True marks a KEPT weight (as torch.nn.utils.prune's masks), False a pruned one"),
        ("round", "the number pruned per row is int(sparsity * in_features), floored, as Wanda's code; the rest are kept "
                  "(flooring the kept count prunes one too many)"),
        ("ties_kept_first", "ties: among equal scores the LOWER column is pruned first (a stable ascending sort, "
                            "torch.sort(score, dim=1, stable=True)); torch.topk promises no order among ties"),
        ("threshold", "ties: prune exactly int(sparsity * in_features) per row; a threshold (score > kth value) "
                      "prunes every weight tied with it"),
    ):
        mistakes.append(((score, _wanda_mask(score, sparsity, mistake)), what))
    return Expected((score, _wanda_mask(score, sparsity)), tuple(mistakes))


_TIES_W = torch.tensor([[1.0, -1.0, 2.0, 0.5], [2.0, 2.0, -2.0, 2.0]])
_TIES_X = torch.tensor([[3.0, 4.0, 0.0, 5.0], [4.0, 3.0, 5.0, 0.0]])  # every column's norm is exactly 5
_MANY_TIES_W = torch.tensor([[2.0, -1.0, 1.0, 3.0, -2.0, 1.0], [0.0, 3.0, -3.0, 1.0, 0.0, 2.0],
                             [-1.0, 1.0, -1.0, 1.0, 2.0, -2.0], [3.0, 2.0, 1.0, -1.0, -2.0, -3.0]])
_MANY_TIES_X = torch.tensor([[3.0, -4.0, 0.0, 5.0, 4.0, -3.0], [4.0, 3.0, -5.0, 0.0, 3.0, 4.0]])  # norms all 5


def _wanda_case(description: str, out: int, n: int, tokens: int, sparsity: float, seed: int,
                dtype: torch.dtype = torch.float32) -> Case:
    X = _randn((tokens, n), seed, dtype)
    X[:, seed % n] *= 20  # an outlier feature, as language models' activations have
    return Case(description, (_randn((out, n), seed + 100, dtype), X, sparsity))


def check_wanda_mask(fn: Callable[[torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """``fn(W, X, sparsity)`` -> ``(score, mask)``: Wanda's |W| * ||X_j||_2 and the mask keeping each row's largest."""
    return check_function(fn, reference=reference_wanda_mask, cases=[
        _wanda_case("a 5x6 weight, 6 tokens (as many tokens as features), sparsity 1/3 (2 pruned per row)", 5, 6, 6, 1 / 3, 5),
        Case("by hand: 2x4, every input norm 5, equal scores in both rows (ties), sparsity 0.5", (_TIES_W, _TIES_X, 0.5)),
        Case("by hand: 4x6 weights of small integers, every input norm 5 (many ties), sparsity 0.5",
             (_MANY_TIES_W, _MANY_TIES_X, 0.5)),
        Case("the same 4x6 weights, sparsity 0.3 (1.8 -> 1 pruned per row), ties", (_MANY_TIES_W, _MANY_TIES_X, 0.3)),
        _wanda_case("a 4x8 weight, 16 tokens with an outlier feature, sparsity 0.5", 4, 8, 16, 0.5, 0),
        _wanda_case("a 3x12 weight, 5 tokens, sparsity 0.3 (3.6 -> 3 pruned per row)", 3, 12, 5, 0.3, 1),
        _wanda_case("a 6x8 weight, 10 tokens, sparsity 0.75", 6, 8, 10, 0.75, 3),
        _wanda_case("a float64 4x10 weight, 7 tokens, sparsity 0.25 (2.5 -> 2 pruned per row)", 4, 10, 7, 0.25, 4, torch.float64),
    ], name="wanda_mask", compare=naming_mistakes(_items(("score", "mask"), _in_dtype)),
        hint="score = W.abs() * X.norm(dim=0); n_prune = int(sparsity * W.shape[1]); "
             "prune = torch.sort(score, dim=1, stable=True).indices[:, :n_prune]; "
             "mask = torch.ones_like(W, dtype=torch.bool).scatter(1, prune, False)")


# --- 3. a LoRA layer's forward ---------------------------------------------------------------------

def _lora(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float,
          mistake: str = "") -> torch.Tensor:
    r = A.shape[1] if mistake == "r_in" else A.shape[0]
    scale = {"no_scale": 1.0, "alpha": alpha, "r_over_alpha": r / alpha}.get(mistake, alpha / r)
    base = x @ (W if mistake == "W_no_transpose" else W.T)  # (..., out)
    if mistake != "no_bias":
        base = base + b
    update = x @ (B @ A) if mistake == "no_transpose" else (x @ A.T) @ B.T  # (..., r) -> (..., out)
    if mistake == "scaled_all":
        return scale * (base + update)
    result = base + scale * update  # Eq. (3) in [LoRA], with the scaling of its Sec. 4.1
    return result.float() if mistake == "float32" else result


def reference_lora_forward(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                           alpha: float) -> Expected:
    args = (x, W, b, A, B, alpha)
    mistakes = []
    for mistake, what in (
        ("no_scale", "the update is scaled by alpha / r"),
        ("alpha", "scale by alpha / r, not alpha: divide by the rank r = A.shape[0]"),
        ("r_over_alpha", "the scale is alpha / r, not r / alpha"),
        ("r_in", "r is the rank, A.shape[0] (A is (r, in_features)), not A.shape[1]"),
        ("no_bias", "the base layer's bias b is forgotten: x W^T + b"),
        ("scaled_all", "scale only the low-rank update; the base layer's output x W^T + b stays as it is "
                       "(with B = 0 the layer must give exactly the base's output)"),
        ("no_transpose", "transpose: the update is x (B A)^T = x A^T B^T, not x (B A)"),
        ("W_no_transpose", "transpose: nn.Linear computes x W^T with W of shape (out, in), not x W"),
        ("float32", "the result keeps x's dtype (float64 stays float64)"),
    ):
        square = W.shape[0] == W.shape[1]
        if mistake not in ("no_transpose", "W_no_transpose") or square:
            mistakes.append((_lora(*args, mistake), what))
    return Expected(_lora(*args), tuple(mistakes))


def _lora_case(description: str, x_shape: tuple[int, ...], out: int, r: int, alpha: float, seed: int,
               dtype: torch.dtype = torch.float32, zero_B: bool = False) -> Case:
    n = x_shape[-1]
    B = torch.zeros(out, r, dtype=dtype) if zero_B else _randn((out, r), seed + 4, dtype)
    return Case(description, (_randn(x_shape, seed, dtype), _randn((out, n), seed + 1, dtype) / n**0.5,
                              _randn((out,), seed + 2, dtype), _randn((r, n), seed + 3, dtype), B, alpha))


def check_lora_forward(fn: Callable[..., torch.Tensor]) -> bool:
    """``fn(x, W, b, A, B, alpha)`` -> ``x W^T + b + (alpha / r) x A^T B^T``, r = A.shape[0]."""
    return check_function(fn, reference=reference_lora_forward, cases=[
        _lora_case("x (5, 8), W (8, 8) square, rank 2, alpha 6 (scale 3)", (5, 8), 8, 2, 6.0, 0),
        _lora_case("x (5, 8), W (6, 8), rank 2, alpha 4 (scale 2)", (5, 8), 6, 2, 4.0, 6),
        _lora_case("B = 0, as LoRA initialises it: the output is the base layer's, x W^T + b", (3, 8), 6, 4, 8.0, 1, zero_B=True),
        _lora_case("x (2, 3, 8), a batch of sequences; W (8, 8) square, rank 2, alpha 16", (2, 3, 8), 8, 2, 16.0, 2),
        _lora_case("x (4, 7), W (5, 7), rank 3, alpha 6, float64", (4, 7), 5, 3, 6.0, 3, torch.float64),
        _lora_case("x (3, 6), W (6, 6) square, rank 4, alpha 1 (scale 1/4)", (3, 6), 6, 4, 1.0, 4),
        _lora_case("rank 1, alpha 2, x (6, 5), W (3, 5)", (6, 5), 3, 1, 2.0, 5),
    ], name="lora_forward", compare=naming_mistakes(_in_dtype),
        hint="x @ W.T + b + (alpha / A.shape[0]) * (x @ A.T) @ B.T")


# --- 4. one speculative-decoding step, greedy -------------------------------------------------------

def _accept(draft_tokens: torch.Tensor, target_logits: torch.Tensor, mistake: str = "") -> tuple[int, int]:
    k = draft_tokens.shape[0]
    choice = target_logits.argmax(dim=-1)  # (k + 1,): the first index of the maximum
    if mistake == "last_max":  # the last index among ties
        choice = target_logits.shape[-1] - 1 - target_logits.flip(-1).argmax(dim=-1)
    if mistake == "any_max":
        best = target_logits.max(dim=-1).values
        agree = [bool(target_logits[i, draft_tokens[i]] == best[i]) for i in range(k)]
    elif mistake == "shifted":
        agree = [bool(draft_tokens[i] == choice[i + 1]) for i in range(k)]
    else:
        agree = [bool(draft_tokens[i] == choice[i]) for i in range(k)]
    n = sum(agree) if mistake == "no_stop" else next((i for i, a in enumerate(agree) if not a), k)
    if mistake == "draft_token" and n < k:
        return n, int(draft_tokens[n])
    if mistake == "no_bonus":
        return n, int(choice[min(n, k - 1)])
    if mistake == "emitted":
        return n + 1, int(choice[n])
    if mistake == "shifted":
        return n, int(choice[min(n + 1, k)])
    return n, int(choice[n])


def reference_accept_draft(draft_tokens: torch.Tensor, target_logits: torch.Tensor) -> Expected:
    return Expected(_accept(draft_tokens, target_logits), tuple(
        (_accept(draft_tokens, target_logits, mistake), what) for mistake, what in (
            ("no_stop", "stop at the first mismatch: a draft token after a rejected one is never accepted, "
                        "even if the target would have chosen it"),
            ("draft_token", "at the first mismatch the next token is the TARGET's choice (its correction), "
                            "not the rejected draft token"),
            ("no_bonus", "when all k draft tokens are accepted the target's last row gives a bonus token: "
                         "next_token = argmax(target_logits[k])"),
            ("emitted", "n_accepted counts accepted DRAFT tokens only (0 to k); the step emits n_accepted + 1 tokens"),
            ("shifted", "off by one: row i of target_logits predicts draft token i (from the context before it)"),
            ("any_max", "ties: torch.argmax returns the FIRST index of the maximum; a draft token tied with it at a "
                        "later index is rejected"),
            ("last_max", "ties: torch.argmax returns the FIRST index of the maximum, not the last"),
        )))


def _step_case(description: str, target: list[int], draft: list[int], vocab: int, seed: int,
               ties: dict[int, int] | None = None) -> Case:
    """Logits whose argmax in row i is ``target[i]`` (by a margin of 3), and in the rows of ``ties``
    a second maximum, equal to the first, at the given later token."""
    logits = _randn((len(target), vocab), seed)
    for i, t in enumerate(target):
        logits[i, t] = logits[i].max() + 3.0
        if ties and i in ties:
            logits[i, ties[i]] = logits[i, t]
    return Case(description, (torch.tensor(draft, dtype=torch.int64), logits))


def check_accept_draft(fn: Callable[[torch.Tensor, torch.Tensor], tuple[int, int]]) -> bool:
    """``fn(draft_tokens, target_logits)`` -> ``(n_accepted, next_token)`` for greedy decoding."""
    return check_function(fn, reference=reference_accept_draft, cases=[
        _step_case("k = 4, the first two accepted, the third rejected", [3, 7, 1, 9, 0], [3, 7, 2, 9], 10, 0),
        _step_case("k = 4, all accepted: a bonus token from the last row", [5, 2, 8, 8, 4], [5, 2, 8, 8], 10, 1),
        _step_case("k = 3, the first rejected, the later ones would match", [6, 1, 2, 3], [0, 1, 2], 10, 2),
        _step_case("k = 1, accepted", [4, 11], [4], 12, 3),
        _step_case("k = 1, rejected", [4, 11], [5], 12, 4),
        _step_case("k = 3, a tie in row 1: the draft's token 6 ties the maximum at token 2", [1, 2, 5, 7], [1, 6, 5], 10, 5,
                   ties={1: 6}),
        _step_case("k = 2, a tie in the bonus row between tokens 3 and 8", [0, 4, 3], [0, 4], 10, 6, ties={2: 8}),
        _step_case("k = 5, a vocabulary of 256 bytes, the fourth rejected", [104, 101, 108, 108, 111, 32],
                   [104, 101, 108, 112, 111], 256, 7),
    ], name="accept_draft", compare=naming_mistakes(_items(("n_accepted", "next_token"), _exact_number)),
        hint="choice = target_logits.argmax(-1); n = 0; while n < k and draft_tokens[n] == choice[n]: n += 1; "
             "return n, int(choice[n])")
