"""Low rank and LoRA on the course's language model: what truncated SVD costs, what LoRA saves.

Truncated SVD (compresskit.llm.lowrank): every Linear layer of load_tiny_lm("main") but the tied
head replaced by its rank-r factors (Eckart-Young), for several r; bytes of the model's parameters
against perplexity on the validation text (compresskit.text.load_text_split().val, context 256),
beside chapter 9's int4 round-to-nearest; and the spectrum of each weight (the rank that keeps
90% / 99% of sum sigma^2, and the break-even rank r = in * out / (in + out) below which the
factors are smaller).

LoRA and QLoRA (compresskit.llm.lora): the frozen model fine-tuned on the shifted text
(compresskit.text.load_shifted_text(): standard-library docstrings), perplexity on its test
modules before and after, and on the original validation text after (what the adapters cost the
old domain); trainable share and Adam's state from the formulas (asserted against the tensors of
a real AdamW run); full fine-tuning of every parameter for comparison, with the same steps. The
chapter's setting (40 steps, batch 8, context 64) over seeds 0-2, and a longer run. Seconds are
wall-clock at one torch thread on this machine, machine-dependent: judged, never asserted.
"""

from __future__ import annotations

import time

import torch

from benchmarks import table, torch_threads
from compresskit import llm, models, text

RANKS = (8, 16, 32, 48, 64, 96, 128)
CHAPTER = dict(steps=40, batch_size=8, context=64, lr=1e-2)  # the chapter's fine-tuning, about 1-2 s
LONG_STEPS = 400
FULL_LR = 1e-3  # full fine-tuning at the chapter's 1e-2 diverges from the pretrained weights' scale


def _mib(n: int) -> str:
    return f"{n / 2**20:.3f}"


def _param_bytes(model: torch.nn.Module) -> int:
    seen = {id(t): t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers())}
    return sum(seen.values())


def spectrum_table(model: torch.nn.Module) -> str:
    rows = []
    for name, s in llm.spectra(model).items():
        m = model.get_submodule(name)
        rows.append([name, f"{m.out_features} x {m.in_features}", f"{float(s[0]):.3f}", f"{float(s[-1]):.4f}",
                     llm.rank_for_energy(s, 0.9), llm.rank_for_energy(s, 0.99),
                     m.in_features * m.out_features // (m.in_features + m.out_features)])
    return table(["layer", "shape", "sigma_1", "sigma_min", "rank for 90% energy", "for 99%", "break-even rank"], rows)


def svd_table(model: torch.nn.Module, val: torch.Tensor) -> str:
    base_bytes = _param_bytes(model)
    rows = [["float32 (none)", "-", _mib(base_bytes), "1.000", f"{text.perplexity(model, val, 256):.3f}"]]
    q = llm.quantize_model(model, "rtn", 4, 32)
    linears = [m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "head"]
    q_bytes = base_bytes - sum(4 * m.weight.numel() for m in linears) + sum(
        llm.quantized_bytes(m.out_features, m.in_features, 4, 32) for m in linears)
    rows.append(["int4 RTN g32 (chapter 9)", "-", _mib(q_bytes), f"{q_bytes / base_bytes:.3f}", f"{text.perplexity(q, val, 256):.3f}"])
    for r in RANKS:
        t = time.perf_counter()
        low = llm.low_rank_model(model, r)
        seconds = time.perf_counter() - t
        b = _param_bytes(low)
        rows.append([f"rank {r}", f"{seconds:.3f}", _mib(b), f"{b / base_bytes:.3f}", f"{text.perplexity(low, val, 256):.3f}"])
    return table(["Linear layers", "low_rank_model (s)", "model MiB", "x float32", "val perplexity"], rows)


def _optimizer_bytes(model: torch.nn.Module, ids: torch.Tensor) -> int:
    """Adam's state after one real AdamW step, summed from its tensors; checked against the formula."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-12)
    llm.finetune(model, ids, 1, batch_size=1, context=8, optimizer=opt)  # lr 1e-12: the weights barely move
    measured = llm.optimizer_state_bytes(opt)
    formula = llm.adam_state_bytes(sum(p.numel() for p in params), len(params))
    assert measured == formula, (measured, formula)
    return measured


def _row(label: str, build, shifted: text.TextSplit, val: torch.Tensor, total: int, full_state: int,
         steps: int, lr: float, seed: int) -> list[object]:
    model = build()
    n = llm.trainable_parameters(model)
    state = llm.adam_state_bytes(n)  # the two moments, the formula of the issue
    before = text.perplexity(model, shifted.test, 256)
    t = time.perf_counter()
    losses = llm.finetune(model, shifted.train, steps, batch_size=CHAPTER["batch_size"], context=CHAPTER["context"], lr=lr, seed=seed)
    seconds = time.perf_counter() - t
    after = text.perplexity(model, shifted.test, 256)
    return [label, seed, f"{n} ({n / total:.2%})", _mib(state), f"{state / full_state:.2%}", _mib(llm.frozen_bytes(model)),
            steps, f"{seconds:.2f}", f"{1e3 * seconds / steps:.0f}", f"{before:.3f}", f"{after:.3f}",
            f"{text.perplexity(model, val, 256):.3f}", f"{losses[-1]:.3f}"]


def lora_table(model: torch.nn.Module, val: torch.Tensor) -> tuple[str, list[list[object]]]:
    shifted = text.load_shifted_text()
    total = sum(p.numel() for p in model.parameters())
    full_state = llm.adam_state_bytes(total)
    checks = [_optimizer_bytes(llm.add_lora(model, 3, 6.0, ("fc1", "fc2")), shifted.train),
              _optimizer_bytes(models.copy_model(model).train(), shifted.train)]

    def full():
        return models.copy_model(model)

    configs = [
        ("LoRA q,v r8 a16", lambda: llm.add_lora(model, 8, 16.0, ("q", "v")), (0,), 40, CHAPTER["lr"]),
        ("LoRA fc1,fc2 r3 a6", lambda: llm.add_lora(model, 3, 6.0, ("fc1", "fc2")), (0, 1, 2), 40, CHAPTER["lr"]),
        ("LoRA q,v,fc1,fc2 r2 a4", lambda: llm.add_lora(model, 2, 4.0, ("q", "v", "fc1", "fc2")), (0,), 40, CHAPTER["lr"]),
        ("QLoRA int4 g32 + fc1,fc2 r3 a6", lambda: llm.add_qlora(model, 3, 6.0, 4, 32, ("fc1", "fc2")), (0, 1, 2), 40, CHAPTER["lr"]),
        ("QLoRA int4 g64 + fc1,fc2 r3 a6", lambda: llm.add_qlora(model, 3, 6.0, 4, 64, ("fc1", "fc2")), (0,), 40, CHAPTER["lr"]),
        ("full fine-tuning (lr 1e-3)", full, (0,), 40, FULL_LR),
        ("LoRA fc1,fc2 r3 a6", lambda: llm.add_lora(model, 3, 6.0, ("fc1", "fc2")), (0,), LONG_STEPS, CHAPTER["lr"]),
        ("QLoRA int4 g32 + fc1,fc2 r3 a6", lambda: llm.add_qlora(model, 3, 6.0, 4, 32, ("fc1", "fc2")), (0,), LONG_STEPS, CHAPTER["lr"]),
        ("full fine-tuning (lr 1e-3)", full, (0,), LONG_STEPS, FULL_LR),
    ]
    base4 = llm.add_qlora(model, 1, 1.0, 4, 32, ("fc1",))  # B = 0: exactly the int4 base
    rows = [["frozen model", "-", "0", "0", "0%", _mib(_param_bytes(model)), 0, "-", "-",
             f"{text.perplexity(model, shifted.test, 256):.3f}", "-", f"{text.perplexity(model, val, 256):.3f}", "-"],
            ["frozen int4 RTN g32 base", "-", "0", "0", "0%", _mib(llm.frozen_bytes(base4)), 0, "-", "-",
             f"{text.perplexity(base4, shifted.test, 256):.3f}", "-", f"{text.perplexity(base4, val, 256):.3f}", "-"]]
    for label, build, seeds, steps, lr in configs:
        for seed in seeds:
            rows.append(_row(label, build, shifted, val, total, full_state, steps, lr, seed))
    header = ["method", "seed", "trainable (share)", "Adam state MiB (2 x 4 B each)", "vs full FT's", "frozen MiB",
              "steps", "seconds", "ms / step", "shifted test ppl before", "after", "original val ppl after", "last loss"]
    note = (f"Adam's state summed from a real AdamW step's tensors equalled the formula (moments + one 4-byte step "
            f"per tensor): LoRA fc1,fc2 r3 {checks[0]} B, full fine-tuning {checks[1]} B.")
    return table(header, rows) + "\n\n" + note, rows


def chapter_calls(model: torch.nn.Module) -> str:
    """The calls the chapter makes, each timed once (one thread)."""
    shifted, val = text.load_shifted_text(), text.load_text_split().val
    rows = []

    def timed(label: str, fn) -> object:
        t = time.perf_counter()
        out = fn()
        rows.append([label, f"{time.perf_counter() - t:.3f}"])
        return out

    timed("load_shifted_text()", text.load_shifted_text)
    timed("spectra(model)", lambda: llm.spectra(model))
    low = timed("low_rank_model(model, 32)", lambda: llm.low_rank_model(model, 32))
    timed("perplexity(rank-32 model, val[:8192], 256)", lambda: text.perplexity(low, val[:8192], 256))
    lm = timed("add_lora(model, 3, 6.0, ('fc1', 'fc2'))", lambda: llm.add_lora(model, 3, 6.0, ("fc1", "fc2")))
    timed("finetune(LoRA, 40 steps, batch 8, context 64)", lambda: llm.finetune(lm, shifted.train, 40, lr=1e-2))
    timed("perplexity(LoRA model, shifted.test[:8192], 256)", lambda: text.perplexity(lm, shifted.test[:8192], 256))
    timed("merge_lora(LoRA model)", lambda: llm.merge_lora(lm))
    ql = timed("add_qlora(model, 3, 6.0, 4, 32, ('fc1', 'fc2'))", lambda: llm.add_qlora(model, 3, 6.0, 4, 32, ("fc1", "fc2")))
    timed("finetune(QLoRA, 40 steps, batch 8, context 64)", lambda: llm.finetune(ql, shifted.train, 40, lr=1e-2))
    timed("perplexity(QLoRA model, shifted.test[:8192], 256)", lambda: text.perplexity(ql, shifted.test[:8192], 256))
    return table(["call", "seconds"], rows)


def step_times(model: torch.nn.Module, rounds: int = 7, steps: int = 5) -> dict[str, float]:
    """Median seconds per training step of LoRA, QLoRA and full fine-tuning, timed alternately
    (``rounds`` rounds of ``steps`` steps each, the chapter's batch and context), so that load on the
    machine hits all three alike."""
    ids = text.load_shifted_text().train
    models_ = {"LoRA fc1,fc2 r3": llm.add_lora(model, 3, 6.0, ("fc1", "fc2")),
               "QLoRA int4 g32 + fc1,fc2 r3": llm.add_qlora(model, 3, 6.0, 4, 32, ("fc1", "fc2")),
               "full fine-tuning": models.copy_model(model)}
    opts = {k: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4) for k, m in models_.items()}
    times: dict[str, list[float]] = {k: [] for k in models_}
    for r in range(rounds + 1):
        for k, m in models_.items():
            t = time.perf_counter()
            llm.finetune(m, ids, steps, batch_size=CHAPTER["batch_size"], context=CHAPTER["context"], seed=r, optimizer=opts[k])
            if r:  # round 0 warms up (Adam's state is allocated on the first step)
                times[k].append((time.perf_counter() - t) / steps)
    return {k: sorted(v)[len(v) // 2] for k, v in times.items()}


def _verdict(times: dict[str, float]) -> str:
    lora, qlora, full = times["LoRA fc1,fc2 r3"], times["QLoRA int4 g32 + fc1,fc2 r3"], times["full fine-tuning"]
    rows = [[k, f"{1e3 * v:.1f}", f"{v / full:.2f}"] for k, v in times.items()]
    verdict = ("LoRA's step took at least 80% of full fine-tuning's: it saves memory (trainable numbers, their "
               "gradients, Adam's state), not time, on this machine" if lora / full > 0.8 else
               f"LoRA's step took {lora / full:.2f}x full fine-tuning's on this machine: the backward pass skips the frozen "
               "weights' gradients and the optimizer updates 1.8% of the numbers, but the forward and backward pass "
               "through the activations of the whole model remain, so the saving is far less than the 55x in "
               "trainable numbers")
    qverdict = (f"QLoRA's step took {qlora / lora:.2f}x LoRA's: dequantizing its int4 base in every forward pass costs time here"
                if qlora / lora > 1.1 else
                f"QLoRA's step took {qlora / lora:.2f}x LoRA's: dequantizing this model's small int4 weights in every forward "
                "pass costs little next to the rest of the step")
    return table(["method", "ms / step (median)", "x full fine-tuning"], rows) + "\n\n" + verdict + ". " + qverdict + "."


def run() -> str:
    with torch_threads(1):
        model = models.load_tiny_lm("main")
        val = text.load_text_split().val
        spectrum = spectrum_table(model)
        svd = svd_table(model, val)
        lora, _ = lora_table(model, val)
        times = step_times(model)
        calls = chapter_calls(model)
    return "\n".join([
        "### Low rank: truncated SVD of the language model's Linear layers",
        "",
        "Every Linear layer but the tied head at rank r (compresskit.llm.low_rank_model); model bytes are all its "
        "parameters (the float32 embedding included); perplexity on load_text_split().val, context 256, one thread.",
        "",
        svd,
        "",
        "The spectrum of each weight (sigma largest and smallest; the smallest rank that keeps 90% / 99% of sum sigma^2; "
        "below the break-even rank the two factors are smaller than the weight):",
        "",
        spectrum,
        "",
        "### LoRA and QLoRA: fine-tuning the frozen model on a shifted text",
        "",
        "load_tiny_lm('main') fine-tuned on load_shifted_text().train (standard-library docstrings), batch 8, context 64, "
        "AdamW without weight decay, lr 1e-2 for the adapters; perplexity on load_shifted_text().test (all of it) and on "
        "the original load_text_split().val (context 256). 'vs full FT's': Adam's moments as a share of full "
        "fine-tuning's (every parameter trainable). QLoRA's base is int4 round-to-nearest with fp16 scales and zero points "
        "(chapter 9), not the paper's NF4.",
        "",
        lora,
        "",
        "Time per training step (batch 8, context 64, one thread), LoRA, QLoRA and full fine-tuning timed alternately "
        "in rounds of 5 steps, medians of 7 rounds (the 'seconds' column above is one run each, on whatever else the machine did):",
        "",
        _verdict(times),
        "",
        "### Low rank and LoRA: the chapter's calls, timed (one thread)",
        "",
        calls,
    ])


if __name__ == "__main__":
    print(run())
