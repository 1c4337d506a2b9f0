"""Speculative decoding (compresskit.llm.speculative) with the course's trained pair on the CPU.

Target: ``load_tiny_lm("main")`` (4 layers, d_model 128); draft: ``load_tiny_lm("draft")`` (2 layers,
d_model 64), both from datasets/build_lm.py. Greedy decoding of ``N_NEW`` bytes after prompts of
``PROMPT_LEN`` bytes taken at evenly spaced places of the test text (compresskit.text), one thread.

1. Acceptance: for k = 1..8, the draft tokens kept (acceptance rate alpha), tokens per target call,
   target calls per generated token, and the tokens per round that Eq. (1) of Leviathan et al.
   (``(1 - alpha^(k+1)) / (1 - alpha)``, i.i.d. acceptance) predicts from the measured alpha. Every
   output is checked to equal ``generate_cached(target)``'s, token for token. These depend on the
   models and the prompts only, not on the machine.
2. Cost per call: one cached forward of one new token, target and draft, and of the target with k + 1
   new tokens (how the target checks a round), against the ratio of their Linear MACs per token.
3. Wall-clock: speculative_generate against generate_cached(target) (the same greedy tokens), timed
   alternately in one run (compresskit.measure.latency_ratio); above 1 means speculative decoding
   is faster. The prediction beside it, from the measured tokens per round and call times:
   tokens per round x t_target(1) / (k t_draft(1) + t_target(k+1)) (Sec. 3.4 of Leviathan et al., with
   the cost of a target call over k + 1 tokens measured rather than assumed equal to one).
   This is hardware- and load-dependent: a verdict, never an assert.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks import table, torch_threads
from compresskit import llm, models, text
from compresskit.measure import latency_ratio, measure_latency

N_NEW = 200  # the chapter's call: 200 bytes, k = 4
PROMPT_LEN = 32
N_PROMPTS = 4
TIMED_PROMPTS = 2  # wall-clock over the first two prompts (each timed call generates N_NEW bytes per prompt)
REPEATS = 5
TIMED_KS = (1, 2, 3, 4, 6, 8)
KS = tuple(range(1, 9))


def prompts() -> list[torch.Tensor]:
    """``N_PROMPTS`` prompts of ``PROMPT_LEN`` bytes from the test split: the first paragraph that starts
    with a letter after each of ``N_PROMPTS`` evenly spaced offsets (not a run of "****" or spaces,
    which both models continue the same way)."""
    test = text.load_text_split().test
    data = bytes(test.to(torch.uint8).tolist())
    step = (len(data) - 4 * PROMPT_LEN) // N_PROMPTS
    out = []
    for i in range(N_PROMPTS):
        at = i * step
        while not (data[at - 2:at] == b"\n\n" and data[at:at + 1].isalpha()):
            at += 1
        out.append(test[at:at + PROMPT_LEN])
    return out


def linear_macs_per_token(model: nn.Module) -> int:
    """Multiply-accumulates of every Linear layer for one token (attention's own products, 2 x T x d
    per layer, are left out: a few percent at these lengths)."""
    return sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))


def call_time(model: models.TinyLM, prefix: torch.Tensor, new: int) -> float:
    """Median seconds of one forward_cached of ``new`` tokens after ``prefix`` (the cache cropped back)."""
    cache = llm.new_cache(model)
    llm.forward_cached(model, prefix[None], cache)
    start = len(cache)
    idx = prefix[None, :new]

    def step() -> None:
        llm.forward_cached(model, idx, cache)
        cache.crop(start)

    return measure_latency(step, warmup=20, repeats=200).median


def acceptance(target, draft, ps, temperature: float = 0.0) -> tuple[list[list[object]], dict[int, float]]:
    """One row per k: pooled alpha, alpha per prompt, tokens per round (measured, Eq. (1)), calls per token;
    and the measured tokens per round for each k."""
    rows, per_round = [], {}
    for k in KS:
        runs = [llm.speculative_generate(target, draft, p, N_NEW, k=k, temperature=temperature) for p in ps]
        if temperature == 0:
            same = all(torch.equal(ids, llm.generate_cached(target, p, N_NEW)) for (ids, _), p in zip(runs, ps))
        drafted, accepted = sum(s.drafted for _, s in runs), sum(s.accepted for _, s in runs)
        calls, made = sum(s.target_calls for _, s in runs), sum(s.generated for _, s in runs)
        rounds = calls - sum(p.numel() > 1 for p in ps)  # the prefill calls give no token
        alpha, per_round[k] = accepted / drafted, made / rounds
        row = [k, f"{alpha:.3f}", " / ".join(f"{s.acceptance_rate:.2f}" for _, s in runs), f"{made / rounds:.2f}",
               f"{llm.expected_tokens_per_round(alpha, k):.2f}", f"{calls / made:.3f}",
               f"{sum(s.draft_calls for _, s in runs) / made:.2f}"]
        rows.append(row + (["yes" if same else "NO"] if temperature == 0 else []))
    return rows, per_round


ACC_HEADER = ["k", "acceptance rate alpha", "alpha per prompt", "tokens per target round", "predicted by Eq. (1)",
              "target calls per token", "draft calls per token"]


def wall_clock(target, draft, timed, per_round, t_target, t_draft) -> list[list[object]]:
    rows = []
    for k in TIMED_KS:
        r = latency_ratio(lambda: [llm.generate_cached(target, p, N_NEW) for p in timed],
                          lambda: [llm.speculative_generate(target, draft, p, N_NEW, k=k) for p in timed],
                          warmup=1, repeats=REPEATS)
        predicted = per_round[k] * t_target[1] / (k * t_draft + t_target[k + 1])  # Sec. 3.4 of Leviathan et al.
        rows.append([k, f"{r.a.median / len(timed) * 1e3:.0f}", f"{r.b.median / len(timed) * 1e3:.0f}",
                     f"{r.ratio:.2f}", f"{r.q1_ratio:.2f}", f"{predicted:.2f}"])
    return rows


def verdict(ratio: float, q1_ratio: float, c: float, macs: float) -> str:
    if min(ratio, q1_ratio) > 1.05:
        word = "holds"
    elif max(ratio, q1_ratio) < 0.95:
        word = "does not hold"
    else:
        word = "is within the noise (no clear gain or loss)"
    return (
        f"**Verdict at the chapter's k = 4: the speed-up {word} on this machine** ({ratio:.2f}x median, "
        f"{q1_ratio:.2f}x on the least disturbed quarter of the calls). Why it is small at best: a draft call "
        f"costs c = {c:.2f} of a target call here although the draft does {macs:.1f}x fewer multiply-accumulates "
        "per token. At one token per call these models are so small that the fixed cost of a call (Python, the "
        "cache's checks and concatenations, a few dozen small kernels) dominates, so k draft calls cost almost "
        "as much as the k target calls they save. Eq. (1) of Leviathan et al. gives the speed-up as "
        "tokens per round / (k c + t_target(k+1) / t_target(1)): it needs c far below 1 / k. Acceptance and "
        "target calls per token are what carry over to large models, where a target call reads gigabytes of "
        "weights and a draft 10-100x smaller is about that much cheaper per call."
    )


def run() -> str:
    with torch_threads(1):
        target, draft = models.load_tiny_lm("main"), models.load_tiny_lm("draft")
        ps = prompts()
        greedy_rows, per_round = acceptance(target, draft, ps)
        sampled_rows, _ = acceptance(target, draft, ps, temperature=1.0)
        t_target = {n: call_time(target, ps[0], n) for n in (1, *[k + 1 for k in KS])}
        t_draft = call_time(draft, ps[0], 1)
        speed_rows = wall_clock(target, draft, ps[:TIMED_PROMPTS], per_round, t_target, t_draft)
        uncached = measure_latency(lambda: text.generate(target, ps[0], N_NEW), warmup=0, repeats=3)
        chapter = measure_latency(lambda: llm.speculative_generate(target, draft, ps[0], N_NEW, k=4), warmup=1, repeats=5)
    macs = linear_macs_per_token(target) / linear_macs_per_token(draft)
    c = t_draft / t_target[1]
    k4 = speed_rows[TIMED_KS.index(4)]
    return "\n".join([
        "### Speculative decoding: acceptance, calls and wall-clock",
        "",
        f"Target `main` ({linear_macs_per_token(target):,} Linear MACs per token) and draft `draft` "
        f"({linear_macs_per_token(draft):,}); {N_NEW} new bytes after {N_PROMPTS} prompts of {PROMPT_LEN} bytes "
        "from the test text (" + "; ".join(repr(text.decode(p)) for p in ps) + "), one thread. Tokens per round: "
        "measured, and predicted by Eq. (1) of Leviathan et al. from the pooled alpha (it assumes each guess is "
        "kept independently; real acceptance comes in runs, so a measured value above the prediction means "
        "easy stretches are accepted wholesale). Target calls per token include each prompt's prefill; plain "
        "decoding makes 1.",
        "",
        "Greedy (every output checked equal to `generate_cached(target)`, token for token):",
        "",
        table(ACC_HEADER + ["identical to generate_cached"], greedy_rows),
        "",
        "Sampled at temperature 1 (seed 0; the tokens follow the target's distribution, tested in "
        "tests/test_llm_speculative.py):",
        "",
        table(ACC_HEADER, sampled_rows),
        "",
        f"One cached forward call (median, after a {PROMPT_LEN}-byte prefix): target {t_target[1] * 1e3:.3f} ms "
        f"for one token, {t_target[5] * 1e3:.3f} ms for 5 (k = 4 checked in one call), {t_target[9] * 1e3:.3f} ms "
        f"for 9; draft {t_draft * 1e3:.3f} ms for one token: c = t_draft / t_target = {c:.2f}, against "
        f"{1 / macs:.2f} from the MACs.",
        "",
        f"Wall-clock, greedy, over the first {TIMED_PROMPTS} prompts, {REPEATS} alternating repeats:",
        "",
        table(["k", f"generate_cached (ms per {N_NEW} bytes)", f"speculative_generate (ms per {N_NEW} bytes)",
               "speed-up (median)", "speed-up (first quartiles)", "predicted from call times"], speed_rows),
        "",
        f"The chapter's call, `speculative_generate(target, draft, prompt, {N_NEW}, k=4)`: {chapter.median * 1e3:.0f} ms "
        f"(IQR {chapter.q1 * 1e3:.0f}-{chapter.q3 * 1e3:.0f}); uncached `text.generate(target, prompt, {N_NEW})`: "
        f"{uncached.median * 1e3:.0f} ms.",
        "",
        verdict(float(k4[3]), float(k4[4]), c, macs),
    ])


if __name__ == "__main__":
    print(run())
