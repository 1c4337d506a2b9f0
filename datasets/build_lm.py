"""Train the course's byte-level language models and store their weights in datasets/.

Run with `make datasets` (after build.py), or `python datasets/build_lm.py [out_dir]`.

* ``tiny_lm_main.pt``: compresskit.models.TINY_LM_CONFIGS["main"] (4 layers, d_model 128,
  858,880 parameters), MAIN_STEPS = 3000 steps of 8 windows of 256 bytes (6,144,000 bytes, about
  16.5 passes over the training text; 13 minutes on the 2-core course machine with one thread
  while other work ran, tiny_lm.json has the seconds).
* ``tiny_lm_draft.pt``: the 2-layer, d_model 64 draft (132,864 parameters) for speculative
  decoding, DRAFT_STEPS = 3000 steps (about 2 minutes).
* ``tiny_lm.json``: their validation and test perplexity and bits per byte (non-overlapping
  windows of 256 bytes, compresskit.text.perplexity), steps, seconds, torch version.

Training: the training topics of compresskit.text.load_text_split(), random windows of 256
bytes (compresskit.text.batches, seed 0), AdamW (Loshchilov and Hutter 2019), linear warm-up
then cosine decay, gradient clipping at 1. Model weights from seed 0. Fixed seed and steps:
on one machine a rebuild gives the same losses; on another CPU the last bits of the floats may
differ and so may the weights. So a rebuild is checked against the committed tiny_lm.json by
its test perplexity, within TOLERANCE (relative), not by its bytes: if it misses, nothing is
replaced and the script exits with an error. The weights' SHA-256 go into SHA256SUMS (other
lines kept), which compresskit.models.load_tiny_lm checks on every load.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from build import write_checksum  # noqa: E402  (datasets/build.py, beside this file)
from compresskit import models, text  # noqa: E402

SEED = 0
BATCH_SIZE = 8
CONTEXT = 256
MAIN_STEPS = 3000
DRAFT_STEPS = 3000
LR = {"main": 3e-3, "draft": 4e-3}
STEPS = {"main": MAIN_STEPS, "draft": DRAFT_STEPS}
WARMUP = 30
WEIGHT_DECAY = 0.1
TOLERANCE = 0.03  # a rebuild's test perplexity within 3% of the committed one
METRICS_FILE = "tiny_lm.json"


def learning_rate(step: int, steps: int, peak: float) -> float:
    """Linear warm-up over WARMUP steps, then cosine decay to peak / 10 at the last step."""
    if step < WARMUP:
        return peak * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(1, steps - WARMUP - 1)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train_lm(name: str = "main", steps: int | None = None, *, seed: int = SEED,
             progress: bool = True) -> tuple[models.TinyLM, list[float]]:
    """Train TINY_LM_CONFIGS[name] for ``steps`` (default STEPS[name]); returns the model and its losses."""
    steps = STEPS[name] if steps is None else steps
    model = models.TinyLM(models.TINY_LM_CONFIGS[name], seed=seed)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]  # matrices and embeddings
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]  # biases, LayerNorms
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                   {"params": rest, "weight_decay": 0.0}], lr=LR[name], betas=(0.9, 0.95))
    train = text.load_text_split().train
    losses = []
    model.train()
    bar = tqdm(text.batches(train, BATCH_SIZE, CONTEXT, seed=seed, steps=steps), total=steps,
               desc=f"training {name}", disable=not progress, mininterval=2.0)
    for step, (x, y) in enumerate(bar):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, LR[name])
        logits = model(x)  # (B, T, 256)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return model.eval(), losses


def evaluate(model: models.TinyLM) -> dict[str, float]:
    """Validation and test perplexity and bits per byte, non-overlapping windows of CONTEXT bytes."""
    split = text.load_text_split()
    out = {}
    for part in ("val", "test"):
        bpb = text.bits_per_byte(model, getattr(split, part), CONTEXT)
        out[f"{part}_bits_per_byte"] = round(bpb, 4)
        out[f"{part}_perplexity"] = round(2.0 ** bpb, 4)
    return out


def build(out_dir: Path = HERE, names: tuple[str, ...] = ("main", "draft")) -> dict:
    """Train, evaluate, check against the committed metrics, then write weights, SHA256SUMS and JSON."""
    metrics_path = out_dir / METRICS_FILE
    committed = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    torch.set_num_threads(min(2, torch.get_num_threads()))
    results, states = dict(committed), {}
    for name in names:
        start = time.perf_counter()
        model, losses = train_lm(name)
        seconds = time.perf_counter() - start
        results[name] = {"parameters": models.TINY_LM_CONFIGS[name].num_parameters(), "steps": STEPS[name],
                         "batch_size": BATCH_SIZE, "context": CONTEXT, "first_loss": round(losses[0], 4),
                         "last_loss": round(losses[-1], 4), "train_seconds": round(seconds, 1), **evaluate(model)}
        print(f"{name}: {results[name]}")
        old = committed.get(name, {}).get("test_perplexity")
        new = results[name]["test_perplexity"]
        if old is not None and abs(new - old) > TOLERANCE * old:
            raise SystemExit(f"rebuilt {name} model's test perplexity {new:.4f} is not within {TOLERANCE:.0%} of the "
                             f"committed {old:.4f} ({metrics_path}); nothing replaced")
        states[name] = model.state_dict()
    for name, state in states.items():
        path = out_dir / models.TINY_LM_FILES[name]
        torch.save(state, path)
        write_checksum(out_dir / "SHA256SUMS", path.name, hashlib.sha256(path.read_bytes()).hexdigest())
    results["machine"] = {"torch": torch.__version__, "python": platform.python_version(),
                          "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    metrics_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
