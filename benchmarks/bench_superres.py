"""Super-resolution benchmark: ESPCN and SRCNN (with a bicubic skip) against aligned bicubic on
the held-out images (256 x 256 native-resolution crops of astronaut and camera; training on
256 x 256 crops of twelve other photographs, datasets/README.md), for the chapter's short
training over seeds 0-2 and for a longer training, with the issue's targets reported met / not met; the plain ESPCN
(no skip) at the same budgets, and the paper's width (64, 32 maps) in the longer one; a deeper
network (eight 3 x 3 layers of 48 maps at low resolution, ReLU) beside the chapter's ESPCN with
the same recipe (larger patches, a cosine learning-rate decay), to tell depth from recipe; CPU
seconds of each training (one thread). Widths are the chapter's (ESPCN 32, 16; SRCNN 16, 8)
unless named.

Targets (issues 13 and 20): after the longer training, ESPCN at least +1.0 dB over aligned bicubic at
x2 and +0.6 dB at x3 (mean PSNR over the held-out images).
Run alone: ``python -c "from benchmarks import bench_superres as b; print(b.run())"``.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import table, torch_threads
from compresskit import data
from compresskit import superres as sr
from compresskit.train import fit

TEST_NAMES = data.SR_HELD_OUT
SEEDS = (0, 1, 2)
SHORT = {"n": 1024, "patch_size": 8, "espcn_epochs": 12, "srcnn_epochs": 6}  # the chapter's
LONG = {"n": 4096, "patch_size": 8, "espcn_epochs": 20, "srcnn_epochs": 10}
TARGETS = {2: 1.0, 3: 0.6}
DEEP = {"n": 2048, "patch_size": 16, "epochs": 12, "lr": 1e-3}  # Adam, cosine decay to 0 over the run


def deep_espcn(scale: int, *, width: int = 48, depth: int = 8, seed: int = 0) -> nn.Sequential:
    """ESPCN made deeper (not in compresskit): ``depth`` 3 x 3 convolutions of ``width`` maps with
    ReLU, all at low resolution, the last to r^2 maps, then PixelShuffle, as in ESPCN [Shi et al. 2016]."""
    layers: list[nn.Module] = [nn.Conv2d(1, width, 3, padding=1), nn.ReLU()]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
    layers += [nn.Conv2d(width, scale * scale, 3, padding=1), nn.PixelShuffle(scale)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(*layers)  # weights drawn at construction, from the seed


def _images() -> dict[str, torch.Tensor]:
    return {k: torch.tensor(v, dtype=torch.float32) / 255 for k, v in data.load_sr_images().items()}


def _gain(model: torch.nn.Module | None, images: dict[str, torch.Tensor], scale: int) -> float:
    """Mean PSNR gain of ``model`` over aligned bicubic on the held-out images (dB)."""
    gains = []
    for name in TEST_NAMES:  # a mean over images of per-image gains
        h, w = images[name].shape
        hr = images[name][:h // scale * scale, :w // scale * scale]
        lr = sr.downscale(hr, scale)
        bicubic = sr.upsample_bicubic(lr, scale).clamp(0, 1)
        with torch.no_grad():
            out = model.eval()(lr[None, None])[0, 0].clamp(0, 1)
        gains.append(sr.psnr(out, hr, crop_border=scale) - sr.psnr(bicubic, hr, crop_border=scale))
    return sum(gains) / len(gains)


def _train(kind: str, scale: int, budget: dict, seed: int, images: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(gain over bicubic in dB, CPU seconds of the training) for one model and seed."""
    train_images = [v for k, v in images.items() if k not in TEST_NAMES]
    lr, hr = sr.sample_patches(train_images, scale, patch_size=budget["patch_size"], n=budget["n"], seed=seed)
    if kind == "SRCNN + skip":
        model, epochs = sr.bicubic_residual(sr.srcnn(scale, n1=16, n2=8, seed=seed), scale), budget["srcnn_epochs"]
    elif kind == "ESPCN (64, 32) + skip":  # the paper's width
        model, epochs = sr.bicubic_residual(sr.espcn(scale, seed=seed), scale), budget["espcn_epochs"]
    elif kind == "ESPCN + skip":
        model, epochs = sr.bicubic_residual(sr.espcn(scale, n1=32, n2=16, seed=seed), scale), budget["espcn_epochs"]
    else:  # the paper's ESPCN layout at the chapter's width, no skip
        model, epochs = sr.espcn(scale, n1=32, n2=16, seed=seed), budget["espcn_epochs"]
    start = time.process_time()
    fit(model, data.make_loader(lr, hr, 32, shuffle=True, seed=seed), epochs=epochs, lr=3e-3,
        loss_fn=lambda m, x, y: F.mse_loss(m(x), y), progress=False, device="cpu")
    return _gain(model, images, scale), time.process_time() - start


MODELS = (("ESPCN + skip", (2, 3)), ("ESPCN, no skip", (2,)), ("SRCNN + skip", (2,)))


def _train_deep(kind: str, scale: int, seed: int, images: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(gain over bicubic in dB, CPU seconds) with DEEP's recipe: larger patches, Adam with a cosine decay."""
    train_images = [v for k, v in images.items() if k not in TEST_NAMES]
    lr, hr = sr.sample_patches(train_images, scale, patch_size=DEEP["patch_size"], n=DEEP["n"], seed=seed)
    net = deep_espcn(scale, seed=seed) if kind.startswith("deeper") else sr.espcn(scale, n1=32, n2=16, seed=seed)
    model = sr.bicubic_residual(net, scale)
    optimizer = torch.optim.Adam(model.parameters(), lr=DEEP["lr"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, DEEP["epochs"] * math.ceil(DEEP["n"] / 32))
    start = time.process_time()
    fit(model, data.make_loader(lr, hr, 32, shuffle=True, seed=seed), epochs=DEEP["epochs"], optimizer=optimizer,
        on_step=lambda m, step: schedule.step(), loss_fn=lambda m, x, y: F.mse_loss(m(x), y), progress=False, device="cpu")
    return _gain(model, images, scale), time.process_time() - start


def _deep_table(images: dict[str, torch.Tensor]) -> tuple[str, dict]:
    rows, gains = [], {}
    for kind, scales, seeds in (("ESPCN + skip", (2,), (0,)), ("deeper (8 x 48, ReLU) + skip", (2, 3), SEEDS)):
        for scale in scales:
            runs = [_train_deep(kind, scale, seed, images) for seed in seeds]
            gains[kind, scale] = min(g for g, _ in runs)
            rows.append([kind, f"x{scale}", ", ".join(f"{g:+.2f}" for g, _ in runs), f"{gains[kind, scale]:+.2f}",
                         f"{sum(t for _, t in runs) / len(runs):.1f}"])
    text = (f"**A deeper network** ({DEEP['n']} patches of {DEEP['patch_size']} x {DEEP['patch_size']} LR pixels, "
            f"{DEEP['epochs']} epochs, batch 32, Adam {DEEP['lr']:g} with a cosine decay to 0; "
            "the deeper network is defined in this file, not in compresskit)\n\n"
            + table(["model", "scale", "gain over aligned bicubic, dB (seed 0; deeper: seeds 0, 1, 2)", "min",
                     "CPU s per training"], rows))
    return text, gains


def _budget_table(title: str, budget: dict, seeds: tuple[int, ...], images: dict[str, torch.Tensor],
                  models: tuple = MODELS) -> tuple[str, dict]:
    rows, gains = [], {}
    for kind, scales in models:
        for scale in scales:
            runs = [_train(kind, scale, budget, s, images) for s in seeds]
            gains[kind, scale] = [g for g, _ in runs]
            rows.append([kind, f"x{scale}", ", ".join(f"{g:+.2f}" for g, _ in runs), f"{min(gains[kind, scale]):+.2f}",
                         f"{sum(t for _, t in runs) / len(runs):.1f}"])
    header = ["model", "scale", f"gain over aligned bicubic, dB (seeds {', '.join(map(str, seeds))})", "min", "CPU s per training"]
    text = f"**{title}** ({budget['n']} patches of {budget['patch_size']} x {budget['patch_size']} LR pixels, " \
           f"ESPCN {budget['espcn_epochs']} epochs, SRCNN {budget['srcnn_epochs']}, batch 32, Adam 3e-3)\n\n" + table(header, rows)
    return text, gains


def run() -> str:
    images = _images()
    with torch_threads(1):
        short, short_gains = _budget_table("The chapter's short training", SHORT, SEEDS, images)
        long, gains = _budget_table("Longer training", LONG, (0,), images, MODELS + (("ESPCN (64, 32) + skip", (2,)),))
        deep, deep_gains = _deep_table(images)
    verdicts = [f"- ESPCN + skip x{r}: {gains['ESPCN + skip', r][0]:+.2f} dB, target >= +{t:.1f} dB: "
                f"{'met' if gains['ESPCN + skip', r][0] >= t else 'NOT met'}" for r, t in TARGETS.items()]
    verdicts += [f"- deeper (8 x 48) + skip x{r}, worst of seeds 0-2: {deep_gains['deeper (8 x 48, ReLU) + skip', r]:+.2f} dB, "
                 f"target >= +{t:.1f} dB: "
                 f"{'met' if deep_gains['deeper (8 x 48, ReLU) + skip', r] >= t else 'NOT met'}" for r, t in TARGETS.items()]
    short_x2 = sum(short_gains["ESPCN + skip", 2]) / len(SEEDS)
    best_long = max(gains["ESPCN + skip", 2][0], gains["ESPCN (64, 32) + skip", 2][0])
    note = (f"ESPCN + skip at x2: {short_x2:+.2f} dB after the short training (mean of the seeds), {best_long:+.2f} dB "
            "at best after the longer one (either width). When the two are close, neither the length of the run "
            "nor the width of the three-layer network limits the gain; compare the deeper network's rows. "
            "Unlike the three-layer models, the deeper network's gain at a fixed seed moved between runs on the machine "
            "it was written on (seed 0 at x2: +1.17 to +1.33 dB in four runs): read its margin over a target with that in mind.")
    return "\n".join(["### Super-resolution", "", short, "", long, "", deep, "", "Targets (issues 13 and 20):", *verdicts,
                      "", note]) + "\n"
