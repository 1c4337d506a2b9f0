"""The key-value cache: time per token against length, bytes per token, and KIVI's int8 / int4 cache.

Speed: the course's trained TinyLM (compresskit.models.load_tiny_lm("main"), 4 layers, 4 heads,
head_dim 32, context 256), one thread. compresskit.llm.decode_times: the time to produce the next
token when the sequence holds n tokens, with the cache (one forward_cached step) and without (the
whole sequence again, as compresskit.text.generate does), median of 20, and the fitted exponent
p of time ~ n^p. With a cache each step computes one position (attention over n keys: a small
term here), so p should be near 0 and the total time of generating n tokens linear in n; without
one each step recomputes n positions, p near 1 and the total quadratic. Then the end-to-end
wall-clock time of 240 greedy tokens after a 16-byte prompt, both ways (tokens asserted equal).

Bytes: per token of the float32 cache (Eq. (3), kv_bytes_per_token) and of KIVI's int8 / int4
cache (Eq. (6), kivi_bytes_per_token), each beside the bytes the cache really holds after 256
positions (nbytes(): codes, fp16 scales and zero points, the float residual).

Quality: perplexity with a float, int8 and int4 cache (compresskit.llm.kv_quantized_perplexity:
each window as if streamed through the cache, one forward per window), groups of 32 and 128
tokens, on the first 16 KiB of the test text (as chapter 9) and on the whole validation text,
context 256. Timings: the calls the chapter would make, one thread, median of 5.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

from benchmarks import table, torch_threads
from compresskit import llm, models, text

LENGTHS = [16, 32, 64, 128, 256]
CHAPTER_LENGTHS = [16, 64, 256]
CHAPTER_TEXT = 4097  # bytes of the validation text the chapter would use: 16 windows of 256


def _median_time(fn: Callable[[], object], repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speed(model: models.TinyLM) -> str:
    cached = llm.decode_times(model, LENGTHS, cached=True, repeats=20)
    full = llm.decode_times(model, LENGTHS, cached=False, repeats=20)
    p_c, p_f = llm.growth_exponent(LENGTHS, cached), llm.growth_exponent(LENGTHS, full)
    rows = [[n, f"{c * 1e3:.2f}", f"{f * 1e3:.2f}", f"{f / c:.1f}x"] for n, c, f in zip(LENGTHS, cached, full)]
    rows.append(["exponent p (time ~ n^p)", f"{p_c:.2f}", f"{p_f:.2f}", ""])
    prompt = text.load_text_split().val[:16]
    t_cached = _median_time(lambda: llm.generate_cached(model, prompt, 240), 3)
    t_full = _median_time(lambda: text.generate(model, prompt, 240), 3)
    same = torch.equal(llm.generate_cached(model, prompt, 240), text.generate(model, prompt, 240))
    holds = p_c < 0.5 and p_f > 0.7
    verdict = (f"**Verdict: {'holds' if holds else 'does not hold'} on this machine.** With the cache the time per "
               f"token grows like n^{p_c:.2f} (total generation time close to linear in length), without it like "
               f"n^{p_f:.2f} (total time close to quadratic)" + ("." if holds else
               "; the expected split is p < 0.5 with the cache and p > 0.7 without: at this model's size, fixed "
               "per-call overheads hide part of the growth."))
    return "\n".join([
        table(["tokens held n", "cached (ms/token)", "uncached (ms/token)", "uncached / cached"], rows),
        "",
        f"240 greedy tokens after a 16-byte prompt: cached {t_cached:.3f} s, uncached {t_full:.3f} s "
        f"({t_full / t_cached:.1f}x); same tokens: {same}.",
        "",
        verdict,
    ])


def memory(model: models.TinyLM) -> str:
    ids = text.load_text_split().val[None, :256]
    fp32 = llm.kv_bytes_per_token(model)
    rows = [["float32", fp32, "", llm.kv_bytes_per_token(model, 2), _held(model, ids, None, 32) / 256, "1.00x"]]
    for bits in (8, 4):
        for G in (32, 128):
            bpt = llm.kivi_bytes_per_token(model, bits, G)
            rows.append([f"int{bits}", bpt, G, "", _held(model, ids, bits, G) / 256, f"{fp32 / bpt:.2f}x"])
    return table(["cache", "bytes / token (formula)", "group G", "fp16 (formula)", "held / token after 256 tokens",
                  "float32 / formula"], rows)


def _held(model: models.TinyLM, ids: torch.Tensor, bits: int | None, G: int) -> int:
    cache = llm.new_cache(model) if bits is None else llm.new_quantized_cache(model, bits, G)
    llm.forward_cached(model, ids, cache)
    return cache.nbytes()


def quality(model: models.TinyLM) -> str:
    split = text.load_text_split()
    evals = [("test, first 16 KiB", split.test[:16385]), ("validation, all", split.val)]
    rows = []
    for name, ids in evals:
        base = llm.kv_quantized_perplexity(model, ids, 256, None)
        rows.append([name, "float32", "", f"{base:.4f}", ""])
        for bits in (8, 4):
            for G in (32, 128):
                ppl = llm.kv_quantized_perplexity(model, ids, 256, bits, G)
                rows.append([name, f"int{bits}", G, f"{ppl:.4f}", f"{100 * (ppl / base - 1):+.3f}%"])
    note = ("Groups of 128 look better than 32 partly because the newest len % G tokens stay in float: in a window "
            "of 256, up to 127 positions with G = 128 (half the window on average), up to 31 with G = 32; a context "
            "of 256 is short for KIVI's groups (the paper: G = 32 and a residual of 128 in contexts of thousands).")
    return table(["text", "cache", "group G", "perplexity", "vs float"], rows) + "\n\n" + note


def chapter_timings(model: models.TinyLM) -> str:
    val = text.load_text_split().val
    calls = [
        (f"kv_quantized_perplexity(val[:{CHAPTER_TEXT}], 256, bits) for None, 8, 4",
         lambda: [llm.kv_quantized_perplexity(model, val[:CHAPTER_TEXT], 256, b) for b in (None, 8, 4)]),
        ("kv_quantized_perplexity(val[:8193], 256, 4)", lambda: llm.kv_quantized_perplexity(model, val[:8193], 256, 4)),
        (f"decode_times({CHAPTER_LENGTHS}, cached=True and False, repeats=5)",
         lambda: [llm.decode_times(model, CHAPTER_LENGTHS, cached=c, repeats=5) for c in (True, False)]),
        ("generate_cached(prompt, 100) and text.generate(prompt, 100)",
         lambda: (llm.generate_cached(model, val[:16], 100), text.generate(model, val[:16], 100))),
    ]
    return table(["call", "seconds (median of 5)"], [[name, f"{_median_time(fn):.3f}"] for name, fn in calls])


def run() -> str:
    with torch_threads(1):
        model = models.load_tiny_lm("main")
        parts = [speed(model), memory(model), quality(model), chapter_timings(model)]
    return "\n".join([
        "### Language models: the key-value cache",
        "",
        "Time per token against the number of tokens held, one thread, the course's TinyLM (median of 20):",
        "",
        parts[0],
        "",
        "Bytes per token of the cache (per sequence; Eq. (3) for float, Eq. (6) for KIVI's codes with fp16 "
        "scales and zero points; 'held' divides nbytes() after 256 tokens, the float residual included):",
        "",
        parts[1],
        "",
        "Perplexity with a quantized cache (KIVI: keys per channel over groups of G tokens, values per token, "
        "the newest len % G tokens in float), context 256:",
        "",
        parts[2],
        "",
        "The calls the chapter would make (one thread):",
        "",
        parts[3],
    ])


if __name__ == "__main__":
    print(run())
