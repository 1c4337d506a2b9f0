"""Speculative decoding: a small draft model guesses, the large target model checks in one pass.

[1] Y. Leviathan, M. Kalman, Y. Matias, "Fast Inference from Transformers via Speculative
    Decoding", ICML 2023, arXiv:2211.17192.
[2] C. Chen, S. Borgeaud, G. Irving, J.-B. Lespiau, L. Sifre, J. Jumper, "Accelerating Large
    Language Model Decoding with Speculative Sampling", 2023, arXiv:2302.01318.

One round. The draft model ``M_q`` proposes ``k`` tokens one at a time,
``x_i ~ q_i = q(. | prefix, x_1..x_{i-1})``; the target ``M_p`` then runs ONCE over all of them
and gives ``k + 1`` distributions ``p_1 .. p_{k+1}`` (its prediction after each prefix). Draft
token ``x_i`` is kept with probability

    min(1, p_i(x_i) / q_i(x_i))                                   # Eq. (1): Alg. 1 in [1], Alg. 2 in [2]

and the round stops at the first rejection, where a token is drawn instead from the residual

    p'_i = norm(max(0, p_i - q_i))                                # Eq. (2): Sec. 2.3 in [1], Thm. 1 in [2]

If all ``k`` are kept, one bonus token is drawn from ``p_{k+1}``. Every round thus gives between 1
and ``k + 1`` tokens for one target call, and the tokens are distributed EXACTLY as the target's
own samples (Theorem 1 of [2]; Appendix A.1 of [1]): for each position
``P(x) = q(x) min(1, p(x)/q(x)) + (1 - sum_y min(q(y), p(y))) p'(x) = min(q(x), p(x)) + max(0, p(x) - q(x)) = p(x)``.

Greedy decoding (temperature 0) is the case where ``p`` and ``q`` put all their mass on their argmax:
a draft token is kept iff it equals the target's argmax, and the first mismatch is replaced by the
target's argmax (:func:`greedy_accept`); the output is then the target's own greedy output, token
for token.

What it saves: the target runs about ``n / (accepted per round + 1)`` times instead of ``n``.
The expected number of tokens per round with acceptance rate ``alpha`` (i.i.d. assumption) is

    (1 - alpha^(k+1)) / (1 - alpha)                               # Eq. (3): Eq. (1) in [1]

Whether that is faster in wall-clock time depends on how much cheaper a draft call is than a
target call on the machine (``c`` in [1]); ``benchmarks/bench_speculative.py`` measures it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from compresskit._validation import check_int, check_module, check_real, check_seed, check_tensor, check_type
from compresskit.llm import kv_cache
from compresskit.models import TinyLM
from compresskit.text import encode

__all__ = [
    "SpeculativeStats",
    "expected_tokens_per_round",
    "greedy_accept",
    "residual_distribution",
    "speculative_accept",
    "speculative_generate",
]

PROB_ATOL = 1e-4  # rows of a probability table must sum to 1 within this


# --- pure tensor functions ---------------------------------------------------------------------

def _check_draft_tokens(draft_tokens: object, vocab: int, name: str = "draft_tokens") -> torch.Tensor:
    check_tensor(name, draft_tokens, ndim=1, nonempty=False)
    if draft_tokens.dtype == torch.bool or draft_tokens.is_floating_point() or draft_tokens.is_complex():
        raise TypeError(f"`{name}` must be an integer tensor of token ids; got dtype {draft_tokens.dtype}")
    if draft_tokens.numel() and (int(draft_tokens.min()) < 0 or int(draft_tokens.max()) >= vocab):
        bad = int(draft_tokens.min()) if int(draft_tokens.min()) < 0 else int(draft_tokens.max())
        raise ValueError(f"`{name}` must hold token ids in [0, {vocab - 1}]; got {bad}")
    return draft_tokens.long()


def _check_rows(name: str, value: object, rows: int) -> torch.Tensor:
    check_tensor(name, value, ndim=2, floating=True, finite=True)
    if value.shape[0] != rows:
        raise ValueError(f"`{name}` must have {rows} rows (one per draft token{' and one more' if name.startswith('target') else ''}); "
                         f"got shape {tuple(value.shape)}")
    return value


def greedy_accept(draft_tokens: torch.Tensor, target_logits: torch.Tensor) -> tuple[int, int]:
    """The accept / reject step of greedy speculative decoding.

    ``draft_tokens`` (k,): the draft's guesses; ``target_logits`` (k + 1, vocab): row ``i`` is the
    target's prediction after the prefix and the first ``i`` guesses. Returns ``(n, token)``: the
    first ``n`` guesses equal the target's argmax and are kept; ``token`` is the target's argmax
    after them (the correction at the first mismatch, or the bonus token from row ``k`` when all
    ``k`` are kept). Ties go to the lowest id, as ``torch.argmax`` does.
    """
    check_tensor("target_logits", target_logits, ndim=2, finite=True)
    draft_tokens = _check_draft_tokens(draft_tokens, target_logits.shape[1])
    k = draft_tokens.numel()
    _check_rows("target_logits", target_logits, k + 1)
    return _greedy_accept(draft_tokens, target_logits)


def _greedy_accept(draft_tokens: torch.Tensor, target_logits: torch.Tensor) -> tuple[int, int]:
    k = draft_tokens.numel()
    best = target_logits.argmax(dim=-1)  # (k + 1,) the target's greedy choice after each prefix
    agree = (draft_tokens == best[:k]).long()  # (k,)
    n = int(agree.cumprod(0).sum())  # length of the agreeing prefix: Eq. (1) with p, q one-hot
    return n, int(best[n])


def residual_distribution(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``norm(max(0, p - q))`` (Eq. (2)), the distribution a rejected position is drawn from.

    ``p``, ``q`` (..., vocab): probabilities. Where ``p <= q`` everywhere (``p == q``; a rejection
    then has probability 0) it returns ``p``. Computed in float64.
    """
    check_tensor("p", p, floating=True, finite=True)
    check_tensor("q", q, floating=True, finite=True)
    if p.shape != q.shape:
        raise ValueError(f"`p` and `q` must have the same shape; got {tuple(p.shape)} and {tuple(q.shape)}")
    _check_probs("p", p)
    _check_probs("q", q)
    return _residual(p, q)


def _residual(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    p, q = p.double(), q.double()
    r = (p - q).clamp(min=0.0)  # Eq. (2) in [1]
    total = r.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, r / total.clamp(min=torch.finfo(torch.float64).tiny), p)


def _check_probs(name: str, value: torch.Tensor) -> None:
    if bool((value < 0).any()):
        raise ValueError(f"`{name}` must hold probabilities (>= 0); got minimum {float(value.min()):.3g}")
    sums = value.double().sum(dim=-1).reshape(-1)  # (rows,)
    worst = int((sums - 1).abs().argmax())
    if abs(float(sums[worst]) - 1) > PROB_ATOL:
        raise ValueError(f"`{name}` rows must sum to 1 (within {PROB_ATOL:g}; pass softmax(logits / temperature)); "
                         f"got a row summing to {float(sums[worst]):.6g}")


def speculative_accept(
    draft_tokens: torch.Tensor, draft_probs: torch.Tensor, target_probs: torch.Tensor, generator: torch.Generator
) -> tuple[int, int]:
    """The accept / reject step of speculative sampling (Alg. 1 in [1], Alg. 2 in [2]).

    ``draft_tokens`` (k,): tokens the draft sampled, ``x_i ~ draft_probs[i]``; ``draft_probs``
    (k, vocab): ``q_i``; ``target_probs`` (k + 1, vocab): ``p_i``, the target's distribution after the
    prefix and the first ``i`` draft tokens. Each ``x_i`` in turn is kept with probability
    ``min(1, p_i(x_i) / q_i(x_i))`` (one uniform draw from ``generator``); at the first rejection a
    token is drawn from ``norm(max(0, p_i - q_i))``; if all are kept, the bonus token is drawn from
    ``p_k``. Returns ``(n, token)``: ``n`` tokens kept, then ``token``. The tokens it gives are
    distributed exactly as the target's own samples.
    """
    check_type("generator", generator, torch.Generator)
    check_tensor("draft_probs", draft_probs, ndim=2, floating=True, finite=True)
    draft_tokens = _check_draft_tokens(draft_tokens, draft_probs.shape[1])
    k = draft_tokens.numel()
    _check_rows("draft_probs", draft_probs, k)
    _check_rows("target_probs", target_probs, k + 1)
    if target_probs.shape[1] != draft_probs.shape[1]:
        raise ValueError(f"`target_probs` and `draft_probs` must have the same vocabulary; got {target_probs.shape[1]} "
                         f"and {draft_probs.shape[1]} columns")
    _check_probs("draft_probs", draft_probs)
    _check_probs("target_probs", target_probs)
    q_x = draft_probs.gather(1, draft_tokens[:, None])[:, 0]  # (k,) q_i(x_i)
    if bool((q_x <= 0).any()):
        i = int((q_x <= 0).nonzero()[0, 0])
        raise ValueError(f"`draft_tokens[{i}]`={int(draft_tokens[i])} has probability 0 under `draft_probs[{i}]`; "
                         "a draft token must be sampled from its own distribution")
    return _speculative_accept(draft_tokens, draft_probs, target_probs, generator)


def _speculative_accept(
    draft_tokens: torch.Tensor, draft_probs: torch.Tensor, target_probs: torch.Tensor, generator: torch.Generator
) -> tuple[int, int]:
    k = draft_tokens.numel()
    p, q = target_probs.double(), draft_probs.double()  # (k + 1, V), (k, V)
    q_x = q.gather(1, draft_tokens[:, None])[:, 0]  # (k,) q_i(x_i)
    p_x = p[:k].gather(1, draft_tokens[:, None])[:, 0]  # (k,) p_i(x_i)
    for i in range(k):
        r = torch.rand((), generator=generator, dtype=torch.float64)
        if r >= p_x[i] / q_x[i]:  # rejected: Eq. (1), kept with probability min(1, p/q)
            residual = _residual(p[i], q[i])  # Eq. (2)
            return i, int(torch.multinomial(residual, 1, generator=generator))
    return k, int(torch.multinomial(p[k], 1, generator=generator))  # all kept: the bonus token


def expected_tokens_per_round(alpha: float, k: int) -> float:
    """``(1 - alpha^(k+1)) / (1 - alpha)`` (Eq. (3)): tokens per target call if each draft token is
    kept independently with probability ``alpha``; ``k + 1`` at ``alpha = 1``."""
    alpha = check_real("alpha", alpha, 0.0, 1.0)
    k = check_int("k", k, 0)
    if alpha == 1.0:
        return float(k + 1)
    return (1 - alpha ** (k + 1)) / (1 - alpha)  # Eq. (3): Eq. (1) in [1]


# --- whole generation --------------------------------------------------------------------------

@dataclass(frozen=True)
class SpeculativeStats:
    """Counts from one :func:`speculative_generate` call.

    ``generated``: new tokens; ``drafted``: draft tokens proposed; ``accepted``: of those, kept;
    ``target_calls`` / ``draft_calls``: forward passes of each model, counting one prefill call each
    (the prompt but its last token) when the prompt has more than one token; plain decoding with a
    cache costs one target call per token, the prompt's included.
    """

    generated: int
    drafted: int
    accepted: int
    target_calls: int
    draft_calls: int

    @property
    def acceptance_rate(self) -> float:
        """accepted / drafted (NaN when nothing was drafted)."""
        return self.accepted / self.drafted if self.drafted else math.nan

    @property
    def target_calls_per_token(self) -> float:
        """target_calls / generated: 1 for plain decoding, lower is better (NaN for no tokens)."""
        return self.target_calls / self.generated if self.generated else math.nan


def _check_lm(name: str, model: object) -> TinyLM:
    check_module(name, model)
    if not isinstance(model, TinyLM):
        raise TypeError(f"`{name}` must be a compresskit.models.TinyLM (the model compresskit.llm.kv_cache caches); "
                        f"got {type(model).__name__}")
    for pname, tensor in model.named_parameters():
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"`{name}` must have finite parameters; got NaN or inf in `{pname}`")
    return model


def _check_prompt(prompt: object, vocab: int) -> torch.Tensor:
    check_type("prompt", prompt, (str, bytes, bytearray, torch.Tensor), "a str, bytes or a 1-D tensor of token ids")
    if not isinstance(prompt, torch.Tensor) and len(prompt) == 0:
        raise ValueError("`prompt` must not be empty (generation starts from at least one token); got an empty string")
    ids = prompt if isinstance(prompt, torch.Tensor) else encode(prompt)
    if ids.dtype == torch.bool or ids.is_floating_point() or ids.is_complex():
        raise TypeError(f"`prompt` must be an integer tensor of token ids; got dtype {ids.dtype}")
    if ids.dim() != 1 or ids.numel() == 0:
        raise ValueError(f"`prompt` must be a non-empty 1-D tensor of token ids; got shape {tuple(ids.shape)}")
    if int(ids.min()) < 0 or int(ids.max()) >= vocab:
        bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
        raise ValueError(f"`prompt` must hold token ids in [0, {vocab - 1}] (the models' vocabulary); got {bad}")
    return ids.to(torch.int64)


def speculative_generate(
    target: nn.Module, draft: nn.Module, prompt: str | bytes | torch.Tensor, n: int, *,
    k: int = 4, temperature: float = 0.0, seed: int = 0,
) -> tuple[torch.Tensor, SpeculativeStats]:
    """``prompt`` followed by ``n`` new token ids (1-D int64) from ``target``, drafted ``k`` at a time by ``draft``.

    Both models keep a KV cache (:mod:`compresskit.llm.kv_cache`); after a rejection each cache is
    cropped back to the tokens kept. Greedy when ``temperature`` is 0: the output is then
    ``compresskit.text.generate(target, prompt, n)``, token for token (the target checks k + 1
    positions in one cached pass, whose logits equal the uncached ones within float error: only an
    exact tie between two logits could be broken differently). Otherwise both models sample
    from softmax(logits / temperature) and :func:`speculative_accept` keeps the target's
    distribution, drawing from a private generator seeded by ``seed``. Both models run in eval
    mode without gradients and get their modes back. Returns ``(ids, stats)``.
    """
    target, draft = _check_lm("target", target), _check_lm("draft", draft)
    vocab = target.tok_emb.num_embeddings
    if draft.tok_emb.num_embeddings != vocab:
        raise ValueError(f"`draft` must have the target's vocabulary (vocab_size={vocab}); "
                         f"got vocab_size={draft.tok_emb.num_embeddings}")
    ids = _check_prompt(prompt, vocab)
    context = min(target.pos_emb.num_embeddings, draft.pos_emb.num_embeddings)
    n = check_int("n", n, 0)
    if ids.numel() + n > context:
        raise ValueError(f"`n` must keep prompt + n within block_size={context} (the smaller model's); "
                         f"got {ids.numel()} + {n} = {ids.numel() + n}")
    k = check_int("k", k, 1, context)
    temperature = check_real("temperature", temperature, 0.0)
    generator = torch.Generator().manual_seed(check_seed("seed", seed))
    modes = [(m, m.training) for m in (*target.modules(), *draft.modules())]  # every module's own mode
    target.eval(), draft.eval()
    try:
        with torch.no_grad():
            return _speculate(target, draft, ids, n, k, temperature, generator)
    finally:
        for module, mode in modes:
            module.training = mode


def _pick(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The draft's token from its logits (vocab,): argmax, or a sample from softmax(logits / T) and that q."""
    if temperature == 0:
        return logits.argmax().reshape(1), None
    q = torch.softmax(logits.double() / temperature, dim=-1)  # (vocab,)
    return torch.multinomial(q, 1, generator=generator), q


def _speculate(target: TinyLM, draft: TinyLM, ids: torch.Tensor, n: int, k: int, temperature: float,
               generator: torch.Generator) -> tuple[torch.Tensor, SpeculativeStats]:
    caches = {"target": kv_cache.new_cache(target), "draft": kv_cache.new_cache(draft)}
    calls = {"target": 0, "draft": 0}

    def run(name: str, model: TinyLM, tokens: torch.Tensor) -> torch.Tensor:  # tokens (T,) -> logits (T, V)
        calls[name] += 1
        return kv_cache.forward_cached(model, tokens[None], caches[name])[0]

    if ids.numel() > 1:  # prefill: each cache holds every id but the last
        run("target", target, ids[:-1]), run("draft", draft, ids[:-1])
    goal, drafted, accepted = ids.numel() + n, 0, 0
    while ids.numel() < goal:
        kk = min(k, goal - ids.numel() - 1)  # the last round may need fewer guesses
        seq, q_rows = ids, []
        for _ in range(kk):  # the draft guesses, one call per token: x_i ~ q_i
            x, q = _pick(run("draft", draft, seq[len(caches["draft"]):])[-1], temperature, generator)
            seq, q_rows = torch.cat([seq, x]), q_rows + [q]
        drafts = seq[ids.numel():]  # (kk,)
        logits = run("target", target, seq[len(caches["target"]):])  # (kk + 1, V): one call checks them all
        if temperature == 0:
            kept, token = _greedy_accept(drafts, logits)
        else:
            p = torch.softmax(logits.double() / temperature, dim=-1)  # (kk + 1, V)
            q = torch.stack(q_rows) if q_rows else p.new_zeros(0, p.shape[1])
            kept, token = _speculative_accept(drafts, q, p, generator)
        ids = torch.cat([ids, drafts[:kept], torch.tensor([token])])  # kept guesses, then the target's token
        drafted, accepted = drafted + kk, accepted + kept
        for cache in caches.values():  # roll back what was not kept: every id but the last stays
            if len(cache) > ids.numel() - 1:
                cache.crop(ids.numel() - 1)
    return ids, SpeculativeStats(n, drafted, accepted, calls["target"], calls["draft"])
