"""Each super-resolution checker keeps the exercise contract (tests/exercise_contract.py): it
accepts an independent worked answer, rejects at least three plausible wrong answers with a
message that names the mistake, reports an untouched stub, and never raises. Every mistake
message a checker knows is triggered by one of the wrong answers below.

The worked answers below are written here, in plain Python and torch loops, not taken from
compresskit: a checker is tested against answers it did not compute itself.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from exercise_contract import contract_tests

from compresskit.course.exercises import superres as ex


def stub(*args):
    raise NotImplementedError  # your code here


# --- worked answers, independent of compresskit ---------------------------------------------

def upsample_bilinear(image, r):
    h, w = image.shape
    out = torch.empty(h * r, w * r, dtype=image.dtype)

    def taps(i, n):
        x = min(max((i + 0.5) / r - 0.5, 0.0), n - 1)
        lo = math.floor(x)
        return lo, min(lo + 1, n - 1), x - lo

    for i in range(h * r):
        y0, y1, ty = taps(i, h)
        for j in range(w * r):
            x0, x1, tx = taps(j, w)
            top = (1 - tx) * image[y0, x0] + tx * image[y0, x1]
            bottom = (1 - tx) * image[y1, x0] + tx * image[y1, x1]
            out[i, j] = (1 - ty) * top + ty * bottom
    return out


def psnr_per_image(x, y, crop_border):
    c = crop_border
    values = []
    for a, b in zip(x, y):
        if c:
            a, b = a[c:-c, c:-c], b[c:-c, c:-c]
        mse = float(((a.double() - b.double()) ** 2).sum()) / a.numel()
        values.append(20 * math.log10(1.0 / math.sqrt(mse)))
    return torch.tensor(values, dtype=torch.float64)


def pixel_shuffle(t, r):
    n, cr2, h, w = t.shape
    c = cr2 // (r * r)
    out = torch.empty(n, c, h * r, w * r, dtype=t.dtype)
    for ch in range(c):
        for i in range(r):
            for j in range(r):
                out[:, ch, i::r, j::r] = t[:, ch * r * r + i * r + j]  # Eq. (4) of the ESPCN paper
    return out


# --- plausible wrong answers ----------------------------------------------------------------

def bilinear_align_corners(image, r):
    return F.interpolate(image[None, None], scale_factor=r, mode="bilinear", align_corners=True)[0, 0]


def bilinear_half_pixel_off(image, r):  # x = i / r
    h, w = image.shape
    out = torch.empty(h * r, w * r, dtype=image.dtype)
    for i in range(h * r):
        y = min(i / r, h - 1)
        y0, y1, ty = math.floor(y), min(math.floor(y) + 1, h - 1), y - math.floor(y)
        for j in range(w * r):
            x = min(j / r, w - 1)
            x0, x1, tx = math.floor(x), min(math.floor(x) + 1, w - 1), x - math.floor(x)
            out[i, j] = (1 - ty) * ((1 - tx) * image[y0, x0] + tx * image[y0, x1]) + ty * (
                (1 - tx) * image[y1, x0] + tx * image[y1, x1])
    return out


def bilinear_is_nearest(image, r):
    return F.interpolate(image[None, None], scale_factor=r, mode="nearest")[0, 0]


def psnr_peak_255(x, y, c):
    if c:
        x, y = x[:, c:-c, c:-c], y[:, c:-c, c:-c]
    return 10 * torch.log10(255.0**2 / ((x - y) ** 2).mean(dim=(1, 2)))


def psnr_wrong_axis(x, y, c):
    if c:
        x, y = x[:, c:-c, c:-c], y[:, c:-c, c:-c]
    return 10 * torch.log10(1.0 / ((x - y) ** 2).mean(dim=(0, 1)))


def psnr_no_crop(x, y, c):
    return 10 * torch.log10(1.0 / ((x - y) ** 2).mean(dim=(1, 2)))


def psnr_crop_one_side(x, y, c):
    x, y = x[:, c:, c:], y[:, c:, c:]
    return 10 * torch.log10(1.0 / ((x - y) ** 2).mean(dim=(1, 2)))


def shuffle_plain_reshape(t, r):
    n, cr2, h, w = t.shape
    return t.reshape(n, cr2 // (r * r), h * r, w * r)


def shuffle_channels_last(t, r):  # channel index (i r + j) C + c
    n, cr2, h, w = t.shape
    c = cr2 // (r * r)
    return t.reshape(n, r, r, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c, h * r, w * r)


def shuffle_offsets_swapped(t, r):
    n, cr2, h, w = t.shape
    c = cr2 // (r * r)
    return t.reshape(n, c, r, r, h, w).permute(0, 1, 4, 3, 5, 2).reshape(n, c, h * r, w * r)


def shuffle_tiles(t, r):
    n, cr2, h, w = t.shape
    c = cr2 // (r * r)
    return t.reshape(n, c, r, r, h, w).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h * r, w * r)


def bilinear_unclamped(image, r):  # x < 0 at the top and left: Python's index -1 reads the last pixel
    h, w = image.shape
    out = torch.empty(h * r, w * r, dtype=image.dtype)
    for i in range(h * r):
        y = (i + 0.5) / r - 0.5
        y0, ty = math.floor(y), y - math.floor(y)
        y1 = min(y0 + 1, h - 1)
        for j in range(w * r):
            x = (j + 0.5) / r - 0.5
            x0, tx = math.floor(x), x - math.floor(x)
            x1 = min(x0 + 1, w - 1)
            out[i, j] = (1 - ty) * ((1 - tx) * image[y0, x0] + tx * image[y0, x1]) + ty * (
                (1 - tx) * image[y1, x0] + tx * image[y1, x1])
    return out


def bilinear_in_float32(image, r):  # torch.zeros defaults to float32
    out = torch.zeros(image.shape[0] * r, image.shape[1] * r)
    out[:] = F.interpolate(image[None, None].double(), scale_factor=r, mode="bilinear", align_corners=False)[0, 0]
    return out


def psnr_20_log10(x, y, c):
    if c:
        x, y = x[:, c:-c, c:-c], y[:, c:-c, c:-c]
    return 20 * torch.log10(1.0 / ((x - y) ** 2).mean(dim=(1, 2)))


def psnr_one_for_the_batch(x, y, c):
    if c:
        x, y = x[:, c:-c, c:-c], y[:, c:-c, c:-c]
    return 10 * torch.log10(1.0 / ((x.double() - y.double()) ** 2).mean())


def psnr_peak_from_x(x, y, c):  # the image's own brightest pixel as the peak
    if c:
        x, y = x[:, c:-c, c:-c], y[:, c:-c, c:-c]
    x, y = x.double(), y.double()
    return 10 * torch.log10(x.amax(dim=(1, 2)) ** 2 / ((x - y) ** 2).mean(dim=(1, 2)))


def psnr_peak_from_y(x, y, c):
    if c:
        x, y = x[:, c:-c, c:-c], y[:, c:-c, c:-c]
    x, y = x.double(), y.double()
    return 10 * torch.log10(y.max(dim=1).values.max(dim=1).values ** 2 / ((x - y) ** 2).mean(dim=(1, 2)))


def psnr_in_float32(x, y, c):
    if c:
        x, y = x[:, c:-c, c:-c], y[:, c:-c, c:-c]
    return 10 * torch.log10(1.0 / ((x.float() - y.float()) ** 2).mean(dim=(1, 2)))


def psnr_crops_in_place(x, y, c):  # writes the errors into x
    x -= y
    if c:
        x = x[:, c:-c, c:-c]
    return 10 * torch.log10(1.0 / (x.double() ** 2).mean(dim=(1, 2)))


def shuffle_into_float32(t, r):  # torch.empty defaults to float32
    n, cr2, h, w = t.shape
    out = torch.empty(n, cr2 // (r * r), h * r, w * r)
    out[:] = F.pixel_shuffle(t, r)
    return out


WRITE = "your function changed its argument `"

WRONG = {
    "upsample_bilinear": (ex.check_upsample_bilinear, upsample_bilinear, [
        (bilinear_align_corners, "equals align_corners=True"),
        (bilinear_half_pixel_off, "equals a half-pixel shift"),
        (bilinear_is_nearest, "equals nearest-neighbour"),
        (bilinear_unclamped, "equals no clamp at the top and left edges"),
        (bilinear_in_float32, "dtype: the input is torch.float64, your answer is torch.float32"),
    ]),
    "psnr_per_image": (ex.check_psnr_per_image, psnr_per_image, [
        (psnr_peak_255, "equals PSNR with peak 255"),
        (psnr_wrong_axis, "averaged over the wrong axes"),
        (psnr_no_crop, "equals PSNR without the border crop"),
        (psnr_crop_one_side, "top and left only"),
        (psnr_20_log10, "equals 20 log10(1 / MSE)"),
        (psnr_one_for_the_batch, "equals one PSNR for the whole batch"),
        (psnr_peak_from_x, "equals the image's own maximum as the peak"),
        (psnr_peak_from_y, "equals the reference image's own maximum as the peak"),
        (psnr_in_float32, "dtype: the input is torch.float64, your answer is torch.float32"),
        (psnr_crops_in_place, WRITE + "x`"),
    ]),
    "pixel_shuffle": (ex.check_pixel_shuffle, pixel_shuffle, [
        (shuffle_plain_reshape, "channels and space mixed up"),
        (shuffle_channels_last, "equals channel index (i r + j) C + c"),
        (shuffle_offsets_swapped, "sub-pixel offsets swapped"),
        (shuffle_tiles, "r x r tiles"),
        (shuffle_into_float32, "dtype: the input is torch.float64, your answer is torch.float32"),
    ]),
}

globals().update(contract_tests(WRONG, stub))

MISTAKES = {"upsample_bilinear": ex.BILINEAR_MISTAKES, "psnr_per_image": ex.PSNR_MISTAKES, "pixel_shuffle": ex.SHUFFLE_MISTAKES}


@pytest.mark.parametrize("name", list(WRONG))
def test_every_mistake_message_is_triggered_by_a_wrong_answer(name, capsys):
    check, _, wrongs = WRONG[name]
    printed = ""
    for answer, _ in wrongs:
        check(answer)
        printed += capsys.readouterr().out
    never = [m for m in MISTAKES[name] if m not in printed]
    assert not never, f"mistake messages no wrong answer triggers: {never}"


def test_the_worked_answers_agree_with_torch():
    """The independent answers are right by PyTorch's own functions, not only by our checker."""
    img = torch.rand(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(upsample_bilinear(img, 3),
                               F.interpolate(img[None, None], scale_factor=3, mode="bilinear", align_corners=False)[0, 0])
    t = torch.rand(2, 18, 3, 2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(pixel_shuffle(t, 3), F.pixel_shuffle(t, 3))


def test_peak_255_is_48_db_too_high():
    x = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(0))
    y = (x + 0.1).clamp(0, 1)
    diff = psnr_peak_255(x, y, 0) - psnr_per_image(x, y, 0)
    torch.testing.assert_close(diff.double(), torch.full((2,), 20 * math.log10(255), dtype=torch.float64))


def test_a_crashing_answer_is_reported_not_raised(capsys):
    assert ex.check_pixel_shuffle(lambda t, r: t[99]) is False
    assert "raised IndexError" in capsys.readouterr().out
