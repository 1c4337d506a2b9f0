"""Exercise checkers for chapter 7, super-resolution.

Each ``check_*`` runs the learner's function against the reference in
:mod:`compresskit.superres` (or PyTorch) on several inputs, prints what fails, and returns a
bool. A stub that raises ``NotImplementedError`` is reported as not attempted.

When an answer is wrong, the checker also computes the plausible mistakes on the same input
(``align_corners=True``, a half-pixel shift, the peak 255 on [0, 1] images, channels and
space mixed up in the shuffle, ...) and, if the answer equals one of them, says which: the
learner reads the name of the mistake, not only "entries differ". The inputs include what real
mistakes need to show: dark images whose maximum is below the range (a peak taken from
``img.max()``), the left edge where an unclamped coordinate wraps to the last pixel, and float64
inputs whose dtype must be kept.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from compresskit.course.checker import FAIL, Case, check_function, close, describe
from compresskit.course.predict import check_prediction
from compresskit.course.progress import FAILED, record
from compresskit.superres import psnr, upsample_bilinear

Variant = Callable[..., Any]


def _diagnosing(reference: Variant, mistakes: dict[str, Variant]) -> tuple[Variant, Callable[[Any, Any], str | None]]:
    """A reference that remembers its inputs, and a compare that, on a mismatch, names the
    mistake whose output equals the learner's on those inputs."""
    seen: dict[str, tuple] = {}

    def remembering(*args: Any) -> Any:
        seen["args"] = args
        return reference(*args)

    def compare(expected: Any, got: Any) -> str | None:
        reason = close(expected, got)
        if reason is None:
            return _dtype_kept(seen["args"], got)
        for name, mistake in mistakes.items():
            try:
                if close(mistake(*seen["args"]), got) is None:
                    return f"{reason}; your result equals {name}"
            except Exception:  # a mistake that cannot run on this input is not the learner's
                continue
        return reason

    return remembering, compare


def _dtype_kept(args: tuple, got: Any) -> str | None:
    """A float64 input gives a float64 answer (float32 would lose precision the learner asked for)."""
    dtypes = [a.dtype for a in args if isinstance(a, torch.Tensor)]
    if dtypes and dtypes[0] == torch.float64 and isinstance(got, torch.Tensor) and got.dtype != torch.float64:
        return (f"dtype: the input is torch.float64, your answer is {got.dtype}: keep the input's dtype (create "
                "new tensors with dtype=<input>.dtype; torch.zeros / torch.empty default to float32)")
    return None


# --- 1. bilinear upsampling -----------------------------------------------------------------

def _bilinear_at(image: torch.Tensor, scale: int, coords: Callable[[int, int], torch.Tensor]) -> torch.Tensor:
    """Bilinear interpolation of (H, W) at source coordinates ``coords(out_size, in_size)`` per axis."""
    out = image.double()
    for axis in (0, 1):
        n = out.shape[axis]
        x = coords(n * scale, n).clamp(0, n - 1)
        left = x.floor().long().clamp(max=n - 1)
        right = (left + 1).clamp(max=n - 1)
        t = (x - left).to(out.dtype)
        a, b = out.index_select(axis, left), out.index_select(axis, right)
        t = t[:, None] if axis == 0 else t[None, :]
        out = a * (1 - t) + b * t
    return out.to(image.dtype)


BILINEAR_MISTAKES: dict[str, Variant] = {
    "align_corners=True (corners pinned, x = i (n - 1) / (n r - 1)): every other pixel is shifted against "
    "the box downscaling": lambda img, r: F.interpolate(img[None, None], scale_factor=r, mode="bilinear",
                                                          align_corners=True)[0, 0],
    "a half-pixel shift (x = i / r, no + 0.5 / - 0.5): use x = (i + 0.5) / r - 0.5":
        lambda img, r: _bilinear_at(img, r, lambda m, n: torch.arange(m, dtype=torch.float64) / r),
    "nearest-neighbour upsampling (each pixel repeated r times), not bilinear":
        lambda img, r: img.repeat_interleave(r, 0).repeat_interleave(r, 1),
    "no clamp at the top and left edges: there x = (0 + 0.5) / r - 0.5 is negative, floor(x) = -1 and in[-1] "
    "reads the LAST pixel; clamp x to [0, n - 1] first": lambda img, r: _bilinear_unclamped(img, r),
}


def _bilinear_unclamped(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Bilinear without clamping x below: index -1 wraps around to the last pixel, as Python's indexing does."""
    out = image.double()
    for axis in (0, 1):
        n = out.shape[axis]
        x = (torch.arange(n * scale, dtype=torch.float64) + 0.5) / scale - 0.5
        left = x.floor().long()
        t = x - left
        right = (left + 1).clamp(max=n - 1)
        a, b = out.index_select(axis, left % n), out.index_select(axis, right % n)
        t = t[:, None] if axis == 0 else t[None, :]
        out = a * (1 - t) + b * t
    return out.to(image.dtype)


def check_upsample_bilinear(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> bool:
    """``fn(image (H, W), scale) -> (H r, W r)``: bilinear, half-pixel aligned (``align_corners=False``),
    of the image's dtype."""
    ramp = torch.arange(5, dtype=torch.float32)[None, :].repeat(4, 1)
    g = torch.Generator().manual_seed(0)
    cases = [
        Case("a horizontal ramp 0..4 at x2: output pixel i samples input x = (i + 0.5) / 2 - 0.5", (ramp, 2)),
        Case("a random 4 x 6 image at x2 (rows and columns both interpolated)", (torch.rand(4, 6, generator=g), 2)),
        Case("a random 5 x 3 image at x3: x = (i + 0.5) / 3 - 0.5, clamped to [0, n - 1] at the edges",
             (torch.rand(5, 3, generator=g), 3)),
        Case("a single bright pixel at x4", (torch.nn.functional.pad(torch.ones(1, 1), (1, 1, 1, 1)), 4)),
        Case("a float64 3 x 4 image at x2: the answer stays float64", (torch.rand(3, 4, generator=g, dtype=torch.float64), 2)),
    ]
    reference, compare = _diagnosing(lambda img, r: upsample_bilinear(img, r), BILINEAR_MISTAKES)
    return check_function(
        fn, reference, cases, name="upsample_bilinear", compare=compare,
        hint="per axis: x = (i + 0.5) / r - 0.5, clamped to [0, n - 1]; left = floor(x), t = x - left; "
        "out = (1 - t) * in[left] + t * in[min(left + 1, n - 1)]; the same along the other axis",
    )


# --- 2. PSNR per image ----------------------------------------------------------------------

def reference_psnr_per_image(x: torch.Tensor, y: torch.Tensor, crop_border: int) -> torch.Tensor:
    """PSNR of each image of a batch (N, H, W) in [0, 1], ``crop_border`` cut from every edge."""
    return torch.tensor([psnr(a, b, data_range=1.0, crop_border=crop_border) for a, b in zip(x, y)], dtype=torch.float64)


def _psnr_variant(x: torch.Tensor, y: torch.Tensor, c: int, *, peak: float | str = 1.0, crop: str = "both",
                  dims: tuple[int, ...] = (1, 2), factor: float = 10.0) -> torch.Tensor:
    x, y = x.double(), y.double()
    if c and crop == "both":
        x, y = x[:, c:-c, c:-c], y[:, c:-c, c:-c]
    elif c and crop == "start":
        x, y = x[:, c:, c:], y[:, c:, c:]
    mse = ((x - y) ** 2).mean(dim=dims)
    if isinstance(peak, str):  # each image's own maximum, of x or of y (after the crop)
        peak = (x if peak == "x" else y).amax(dim=(1, 2))
    return factor * torch.log10(peak**2 / mse)


PSNR_MISTAKES: dict[str, Variant] = {
    "PSNR with peak 255 on images in [0, 1] (48.13 dB too high): the peak is the value range, 1.0 here":
        lambda x, y, c: _psnr_variant(x, y, c, peak=255.0),
    "PSNR without the border crop: cut crop_border pixels from every edge first":
        lambda x, y, c: _psnr_variant(x, y, c, crop="none"),
    "the border cut from the top and left only (x[c:, c:]): cut x[c:-c, c:-c]":
        lambda x, y, c: _psnr_variant(x, y, c, crop="start"),
    "the MSE averaged over the wrong axes (dim=(0, 1), batch and rows): average each image over its "
    "own pixels, dim=(1, 2)": lambda x, y, c: _psnr_variant(x, y, c, dims=(0, 1)),
    "one PSNR for the whole batch: return one value per image, shape (N,)":
        lambda x, y, c: _psnr_variant(x, y, c, dims=(0, 1, 2)),
    "20 log10(1 / MSE): it is 10 log10(peak^2 / MSE) (or 20 log10(peak / RMSE))":
        lambda x, y, c: _psnr_variant(x, y, c, factor=20.0),
    "the image's own maximum as the peak (x.max()): the peak is the range the values can take, 1.0 for images "
    "in [0, 1], however dark the image": lambda x, y, c: _psnr_variant(x, y, c, peak="x"),
    "the reference image's own maximum as the peak (y.max()): the peak is the range the values can take, 1.0 for "
    "images in [0, 1], however dark the image": lambda x, y, c: _psnr_variant(x, y, c, peak="y"),
}


def check_psnr_per_image(fn: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> bool:
    """``fn(x, y, crop_border) -> (N,)``: the PSNR in dB of each image of two batches (N, H, W) in [0, 1],
    peak 1.0 whatever the images hold; float64 for float64 images."""
    g = torch.Generator().manual_seed(1)
    clean = torch.rand(3, 10, 12, generator=g)
    noisy = (clean + 0.05 * torch.randn(3, 10, 12, generator=g)).clamp(0, 1)
    cases = [
        Case("3 images 10 x 12 with noise, no crop: one PSNR per image (mean over each image's pixels, "
             "not over the batch), peak 1.0", (clean, noisy, 0)),
        Case("the same with crop_border = 2: cut 2 pixels from every edge", (clean, noisy, 2)),
        Case("3 images with large errors on the bottom row and the right column, crop_border = 1 (cut from every edge)",
             (clean, _edge_errors(clean), 1)),
        Case("images of different brightness: each image's own MSE", (clean * torch.tensor([1.0, 0.5, 0.2])[:, None, None],
                                                                      noisy * torch.tensor([1.0, 0.5, 0.2])[:, None, None], 0)),
        Case("dark images, no pixel above 0.4: the peak is still 1.0, the range of [0, 1]", (0.4 * clean, 0.4 * noisy, 1)),
        Case("float64 images: the answer stays float64", (clean.double(), noisy.double(), 0)),
    ]
    reference, compare = _diagnosing(reference_psnr_per_image, PSNR_MISTAKES)
    return check_function(
        fn, reference, cases, name="psnr_per_image", compare=compare,
        hint="x, y = x[:, c:-c, c:-c], y[:, c:-c, c:-c] when c > 0; mse = ((x - y) ** 2).mean(dim=(1, 2)); "
        "return 10 * torch.log10(1.0 / mse)",
    )


def _edge_errors(clean: torch.Tensor) -> torch.Tensor:
    """``clean`` with noise everywhere and a large error on the bottom row and the right column."""
    g = torch.Generator().manual_seed(2)
    out = (clean + 0.02 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    out[:, -1, :] = 1 - clean[:, -1, :]
    out[:, :, -1] = 1 - clean[:, :, -1]
    return out


# --- 3. pixel shuffle -----------------------------------------------------------------------

def _shuffle_as(t: torch.Tensor, r: int, view: str) -> torch.Tensor:
    n, cr2, h, w = t.shape
    c = cr2 // (r * r)
    if view == "reshape":
        return t.reshape(n, c, h * r, w * r)
    if view == "channels_last":  # channel index = (i r + j) C + c
        return t.reshape(n, r, r, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c, h * r, w * r)
    if view == "swapped":  # x offset before y offset
        return t.reshape(n, c, r, r, h, w).permute(0, 1, 4, 3, 5, 2).reshape(n, c, h * r, w * r)
    if view == "blocks":  # sub-pixel index major: r x r tiles of whole low-resolution maps
        return t.reshape(n, c, r, r, h, w).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h * r, w * r)
    raise ValueError(view)


SHUFFLE_MISTAKES: dict[str, Variant] = {
    "a plain reshape to (N, C, H r, W r): channels and space mixed up; split the channels into "
    "(C, r, r) and interleave them with H and W (permute) before reshaping":
        lambda t, r: _shuffle_as(t, r, "reshape"),
    "channel index (i r + j) C + c: the r^2 maps of one output channel are consecutive, c r^2 + i r + j":
        lambda t, r: _shuffle_as(t, r, "channels_last"),
    "the two sub-pixel offsets swapped: channel c r^2 + i r + j goes to row offset i (y mod r), column offset j":
        lambda t, r: _shuffle_as(t, r, "swapped"),
    "r x r tiles of whole low-resolution maps (permute (0, 1, 2, 4, 3, 5)): each sub-pixel offset must sit "
    "next to the low-resolution pixel, order (N, C, H, r, W, r)":
        lambda t, r: _shuffle_as(t, r, "blocks"),
}


def check_pixel_shuffle(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> bool:
    """``fn(t (N, C r^2, H, W), r) -> (N, C, H r, W r)``, equal to ``torch.nn.functional.pixel_shuffle``
    (the dtype kept)."""
    cases = [
        Case("one image, one output channel, r = 2, 2 x 3 maps (values = their flat index)",
             (torch.arange(24.0).reshape(1, 4, 2, 3), 2)),
        Case("two output channels, r = 2 (8 maps): channel c uses maps 4c..4c+3",
             (torch.arange(2 * 8 * 2 * 2.0).reshape(2, 8, 2, 2), 2)),
        Case("r = 3, 3 x 2 maps: offsets i = y mod 3 (row), j = x mod 3 (column)",
             (torch.arange(9 * 3 * 2.0).reshape(1, 9, 3, 2), 3)),
        Case("three output channels, r = 2, random values", (torch.rand(1, 12, 3, 4, generator=torch.Generator().manual_seed(3)), 2)),
        Case("float64 maps, r = 2: the answer stays float64", (torch.rand(1, 8, 2, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64), 2)),
    ]
    reference, compare = _diagnosing(lambda t, r: F.pixel_shuffle(t, r), SHUFFLE_MISTAKES)
    return check_function(
        fn, reference, cases, name="pixel_shuffle", compare=compare,
        hint="n, cr2, h, w = t.shape; c = cr2 // r**2; "
        "t.reshape(n, c, r, r, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c, h * r, w * r)",
    )


# --- 4. predict, then measure: the MACs of FSRCNN ------------------------------------------------

FSRCNN_SIZES = {"d": 56, "s": 12, "m": 4}  # Dong, Loy, Tang, ECCV 2016, arXiv:1608.00367


def _fsrcnn(scale: int, d: int = 56, s: int = 12, m: int = 4) -> torch.nn.Sequential:
    """FSRCNN(d, s, m) for one channel: 5x5 feature extraction, 1x1 shrinking, m 3x3 mapping
    layers, 1x1 expanding, all on the low-resolution image, then a 9x9 deconvolution of stride
    ``scale`` (padded so the output is exactly ``scale`` times larger)."""
    nn = torch.nn
    layers = [nn.Conv2d(1, d, 5, padding=2), nn.PReLU(d), nn.Conv2d(d, s, 1), nn.PReLU(s)]
    for _ in range(m):
        layers += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
    layers += [nn.Conv2d(s, d, 1), nn.PReLU(d), nn.ConvTranspose2d(d, 1, 9, stride=scale, padding=4, output_padding=scale - 1)]
    return nn.Sequential(*layers)


def fsrcnn_macs_per_output_pixel(scale: int, lr_size: int = 12) -> float:
    """``measure.count_macs`` of FSRCNN(56, 12, 4) on an ``lr_size`` x ``lr_size`` image, per pixel
    of the output (the random weights drawn do not touch torch's global generator)."""
    from compresskit import measure

    with torch.random.fork_rng(devices=[]):
        model = _fsrcnn(scale, **FSRCNN_SIZES)
    return measure.count_macs(model, torch.zeros(1, 1, lr_size, lr_size)) / (lr_size * scale) ** 2


def check_fsrcnn_macs_prediction(prediction: tuple[float, float]) -> bool:
    """The learner's prediction ``(x2, x3)`` of FSRCNN's multiply-accumulates per output pixel at
    scales 2 and 3, against ``measure.count_macs``, with the usual wrong reasonings named."""
    parts = ("fsrcnn_macs_x2", "fsrcnn_macs_x3")  # every outcome is recorded under these two, so a later pass replaces it
    if prediction is Ellipsis:
        prediction = (..., ...)
    if not isinstance(prediction, (tuple, list)) or len(prediction) != 2:
        message = f"write two numbers, (MACs per output pixel at x2, at x3); got {describe(prediction)}"
        print(f"{FAIL} fsrcnn_macs_prediction: checks failed: {message}")
        for part in parts:
            record(part, FAILED, message)
        return False
    d, s, m = FSRCNN_SIZES["d"], FSRCNN_SIZES["s"], FSRCNN_SIZES["m"]
    low_res = 25 * d + s * d + 9 * m * s * s + d * s  # per LR pixel, before the deconvolution
    deconv = 81 * d  # per LR pixel
    results = []
    for scale, predicted in zip((2, 3), prediction):
        r2 = scale * scale
        mistakes = {
            low_res / r2 + deconv: (f"you counted the deconvolution as if each output pixel read a whole 9x9 window of {d} maps "
                                    f"(a convolution at the high resolution): with stride {scale} each LR pixel's 81 x {d} "
                                    f"products are spread over {r2} output pixels, so it costs 81 x {d} / {r2} per output pixel"),
            low_res + deconv: f"that is per low-resolution pixel: every layer runs on the LR image, and each LR pixel gives {r2} output pixels",
            (low_res - 2 * s * d + deconv) / r2: f"you left out the 1x1 shrinking ({d} -> {s}) and expanding ({s} -> {d}) layers, {s * d} MACs each per LR pixel",
            2 * (low_res + deconv) / r2: "that counts FLOPs, 2 per multiply-accumulate: the question asks for MACs",
            (low_res - 9 * (m - 1) * s * s + deconv) / r2: f"you counted one 3x3 mapping layer: FSRCNN has m = {m} of them",
            (low_res + 81) / r2: f"the deconvolution reads {d} maps: 81 x {d} products per LR pixel, not 81",
        }
        if scale == 3:
            mistakes[(low_res + deconv) / 4] = "that is the x2 count: at x3 each LR pixel gives 9 output pixels, not 4"
        results.append(check_prediction(parts[scale - 2], predicted, fsrcnn_macs_per_output_pixel(scale), rel_tol=0.01,
                                        mistakes=mistakes, hint="sum k x k x C_in x C_out over the layers per LR pixel, then "
                                                                f"divide by the {r2} output pixels each LR pixel gives"))
    return all(results)
