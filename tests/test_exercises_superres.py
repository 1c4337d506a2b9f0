"""Each super-resolution checker accepts an independent worked answer, rejects the plausible
wrong answers a learner writes (each with a message that names the mistake) and reports an
untouched stub as not attempted.

The worked answers below are written here, in plain Python and torch loops, not taken from
compresskit: a checker is tested against answers it did not compute itself.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

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


CHECKS = [
    (ex.check_upsample_bilinear, upsample_bilinear),
    (ex.check_psnr_per_image, psnr_per_image),
    (ex.check_pixel_shuffle, pixel_shuffle),
]

WRONG = [
    (ex.check_upsample_bilinear, bilinear_align_corners, "equals align_corners=True"),
    (ex.check_upsample_bilinear, bilinear_half_pixel_off, "equals a half-pixel shift"),
    (ex.check_upsample_bilinear, bilinear_is_nearest, "equals nearest-neighbour"),
    (ex.check_psnr_per_image, psnr_peak_255, "equals PSNR with peak 255"),
    (ex.check_psnr_per_image, psnr_wrong_axis, "averaged over the wrong axes"),
    (ex.check_psnr_per_image, psnr_no_crop, "equals PSNR without the border crop"),
    (ex.check_psnr_per_image, psnr_crop_one_side, "top and left only"),
    (ex.check_pixel_shuffle, shuffle_plain_reshape, "channels and space mixed up"),
    (ex.check_pixel_shuffle, shuffle_channels_last, "equals channel index (i r + j) C + c"),
    (ex.check_pixel_shuffle, shuffle_offsets_swapped, "sub-pixel offsets swapped"),
    (ex.check_pixel_shuffle, shuffle_tiles, "r x r tiles"),
]


@pytest.mark.parametrize("check, solution", CHECKS, ids=[c[0].__name__ for c in CHECKS])
def test_checker_accepts_an_independent_worked_answer(check, solution, capsys):
    assert check(solution) is True
    assert "all" in capsys.readouterr().out


@pytest.mark.parametrize("check, wrong, words", WRONG, ids=[w[1].__name__ for w in WRONG])
def test_checker_rejects_a_plausible_wrong_answer_and_names_it(check, wrong, words, capsys):
    assert check(wrong) is False
    out = capsys.readouterr().out
    assert "checks failed" in out and words in out, out


@pytest.mark.parametrize("check", [c[0] for c in CHECKS])
def test_every_checker_has_at_least_three_wrong_answers(check):
    assert sum(w[0] is check for w in WRONG) >= 3


@pytest.mark.parametrize("check, solution", CHECKS, ids=[c[0].__name__ for c in CHECKS])
def test_checker_reports_a_stub_as_not_attempted(check, solution, capsys):
    assert check(stub) is False
    assert "not attempted yet" in capsys.readouterr().out


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
