"""compresskit.data: the digits split and the checksummed super-resolution images."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from compresskit import data

REPO = Path(__file__).resolve().parents[1]


def test_split_sizes_cover_the_digits_once():
    split = data.load_digits_split()
    sizes = [len(split.y_train), len(split.y_val), len(split.y_test)]
    assert sizes == [1078, 359, 360]
    # No image appears in two parts (digits has no exact duplicate images, so rows identify samples).
    rows = [set(map(bytes, X)) for X in (split.X_train, split.X_val, split.X_test)]
    assert sum(map(len, rows)) == 1797
    assert not (rows[0] & rows[1]) and not (rows[0] & rows[2]) and not (rows[1] & rows[2])
    assert split.X_train.dtype == np.float32 and split.X_train.min() >= 0 and split.X_train.max() <= 1


def test_split_is_stratified_and_reproducible():
    split = data.load_digits_split()
    for y in (split.y_train, split.y_val, split.y_test):
        share = np.bincount(y, minlength=10) / len(y)
        assert np.all(np.abs(share - 0.1) < 0.015)
    data.load_digits_split.cache_clear()
    again = data.load_digits_split()
    assert np.array_equal(split.X_train, again.X_train) and np.array_equal(split.y_test, again.y_test)
    other = data.load_digits_split(seed=1)
    assert not np.array_equal(split.y_train, other.y_train)


def test_split_arrays_are_read_only():
    split = data.load_digits_split()
    with pytest.raises(ValueError):
        split.X_train[0, 0] = 5.0


def test_tensors_have_image_shape():
    X, y = data.load_digits_split().tensors("val")
    assert X.shape == (359, 1, 8, 8) and X.dtype == torch.float32
    assert y.dtype == torch.int64
    with pytest.raises(ValueError, match="`part` must be one of"):
        data.load_digits_split().tensors("training")


def test_loader_shuffles_the_same_way_for_the_same_seed():
    X, y = data.load_digits_split().tensors("train")
    first = [b[1] for b in data.make_loader(X, y, 100, shuffle=True, seed=3)]
    second = [b[1] for b in data.make_loader(X, y, 100, shuffle=True, seed=3)]
    third = [b[1] for b in data.make_loader(X, y, 100, shuffle=True, seed=4)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.equal(first[0], third[0])
    assert sum(len(b) for b in first) == len(y)


def test_loader_rejects_bad_input():
    X, y = data.load_digits_split().tensors("train")
    with pytest.raises(ValueError, match="same length; got 1078 and 10"):
        data.make_loader(X, y[:10])
    with pytest.raises(ValueError, match=r"`batch_size` must be an integer in \[1, inf\]; got 0"):
        data.make_loader(X, y, 0)
    with pytest.raises(ValueError, match="must not be empty"):
        data.make_loader(X[:0], y[:0])
    with pytest.raises(ValueError, match=r"`X` must have shape \(N, 64\)"):
        data.to_images(np.zeros((3, 8, 8)))


def test_calibration_batch_comes_from_train_without_repeats():
    calib = data.calibration_batch(100, seed=1)
    train_rows = set(map(bytes, data.load_digits_split().tensors("train")[0].numpy()))
    assert calib.shape == (100, 1, 8, 8)
    assert all(bytes(row) in train_rows for row in calib.numpy())
    assert len(set(map(bytes, calib.numpy()))) == 100  # drawn without replacement
    with pytest.raises(ValueError, match=r"`n` must be an integer in \[1, 1078\]; got 0"):
        data.calibration_batch(0)


def test_sr_images_load_and_match_checksum():
    images = data.load_sr_images()
    assert len(images) == 14
    for name, img in images.items():
        assert img.shape == (256, 256) and img.dtype == np.uint8, name
        assert img.std() > 8, f"{name} should not be flat"


def _build_module():
    sys.path.insert(0, str(REPO / "datasets"))
    try:
        import build
    finally:
        sys.path.pop(0)
    return build


def test_sr_held_out_images_are_not_in_the_training_crops():
    """No training image is a crop of a held-out one: a crop would repeat its rows inside the held-out rows."""
    images = data.load_sr_images()
    assert set(data.SR_HELD_OUT) == {"astronaut", "camera"} <= set(images)
    held_rows = [row.tobytes() for name in data.SR_HELD_OUT for row in images[name]]
    for name, img in images.items():
        if name not in data.SR_HELD_OUT:
            for probe in (img[0], img[len(img) // 2], img[-1]):
                assert not any(probe.tobytes() in row for row in held_rows), name
    # the check can fail: a crop of camera is found
    crop = images["camera"][100:200, 50:150]
    assert any(crop[0].tobytes() in row for row in held_rows)
    # and the test crops are where build.py says, in the same photographs (no training crop overlaps them)
    skimage_data = pytest.importorskip("skimage.data")
    assert np.array_equal(images["camera"], skimage_data.camera()[64:320, 128:384])
    build = _build_module()
    whole_rows = [row.tobytes() for img in (skimage_data.camera(), build.grey(skimage_data.astronaut())) for row in img]
    for name, img in images.items():
        if name not in data.SR_HELD_OUT:
            assert not any(img[len(img) // 2].tobytes() in row for row in whole_rows), name


def test_sr_images_are_scikit_images_grey_at_native_resolution():
    """Crops cut without resizing, grey as skimage.color.rgb2gray (BT.709) to one level."""
    skimage_data = pytest.importorskip("skimage.data")
    from skimage.color import rgb2gray

    images = data.load_sr_images()
    assert np.array_equal(images["camera"], skimage_data.camera()[64:320, 128:384])
    theirs = np.round(rgb2gray(skimage_data.astronaut()[32:288, 160:416]) * 255)
    diff = images["astronaut"].astype(float) - theirs
    assert np.abs(diff).max() <= 1 and np.abs(diff).mean() < 0.01
    brick = skimage_data.brick()  # 512 x 512 grey: its stored crop is the centre, pixel for pixel
    assert np.array_equal(images["brick"], brick[128:384, 128:384])


def test_dataset_build_keeps_other_checksum_lines(tmp_path):
    """SHA256SUMS also lists files other scripts build: rebuilding the images keeps their lines."""
    build = _build_module()
    other = "ab" * 32 + "  other_file.bin\n"
    (tmp_path / "SHA256SUMS").write_text(other)
    build.write_checksum(tmp_path / "SHA256SUMS", "sr_images.npz", "cd" * 32)
    assert (tmp_path / "SHA256SUMS").read_text() == other + "cd" * 32 + "  sr_images.npz\n"
    build.write_checksum(tmp_path / "SHA256SUMS", "sr_images.npz", "ef" * 32)  # replaced, not added
    assert (tmp_path / "SHA256SUMS").read_text() == other + "ef" * 32 + "  sr_images.npz\n"
    with pytest.raises(ValueError, match="does not fit"):
        build.crop(np.zeros((100, 300), np.uint8), None)


def test_sr_images_missing_file_names_it(tmp_path):
    shutil.copy(REPO / "datasets" / "SHA256SUMS", tmp_path)
    with pytest.raises(FileNotFoundError, match="sr_images.npz is missing"):
        data.load_sr_images(tmp_path)


def test_sr_images_corrupt_file_names_it(tmp_path):
    for f in ("SHA256SUMS", "sr_images.npz"):
        shutil.copy(REPO / "datasets" / f, tmp_path)
    blob = bytearray((tmp_path / "sr_images.npz").read_bytes())
    blob[1000] ^= 0xFF  # flip one byte
    (tmp_path / "sr_images.npz").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=r"sr_images.npz is corrupt: SHA-256 must be [0-9a-f]{64}; got [0-9a-f]{64}"):
        data.load_sr_images(tmp_path)


def test_sr_images_without_checksum_entry(tmp_path):
    shutil.copy(REPO / "datasets" / "sr_images.npz", tmp_path)
    (tmp_path / "SHA256SUMS").write_text("")
    with pytest.raises(ValueError, match="has no entry"):
        data.load_sr_images(tmp_path)


def test_dataset_build_is_reproducible(tmp_path):
    build = _build_module()
    build.build(tmp_path)
    assert (tmp_path / "sr_images.npz").read_bytes() == (REPO / "datasets" / "sr_images.npz").read_bytes()
    # SHA256SUMS also lists the language models' weights (datasets/build_lm.py): compare this file's line.
    ours = [line for line in (REPO / "datasets" / "SHA256SUMS").read_text().splitlines() if line.endswith("  sr_images.npz")]
    assert (tmp_path / "SHA256SUMS").read_text().splitlines() == ours


def test_loader_batches_equal_torch_default_loader():
    """make_loader indexes whole batches at once; the batches are torch's own, in the same order."""
    X, y = data.load_digits_split().tensors("train")
    ours = data.make_loader(X, y, 64, shuffle=True, seed=5)
    theirs = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(5))
    for _ in range(2):  # two epochs: the generator's state carries over the same way
        for (xa, ya), (xb, yb) in zip(ours, theirs, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("seed, error, match", [
    (-1, ValueError, r"`seed` must be an integer in \[0, inf\]; got -1"),
    (1.5, TypeError, r"`seed` must be an integer; got float 1.5"),
    (True, TypeError, r"`seed` must be an integer; got bool True"),
])
def test_seeds_are_checked(seed, error, match):
    with pytest.raises(error, match=match):
        data.calibration_batch(10, seed=seed)
    with pytest.raises(error, match=match):
        data.digits_loaders(seed=seed)
    with pytest.raises(error, match=match):
        data.make_loader(np.zeros((4, 2)), np.zeros(4), 2, shuffle=True, seed=seed)


def test_all_lists_the_public_names_and_nothing_else():
    import inspect

    defined_here = {name for name, value in vars(data).items()
                    if not name.startswith("_") and (getattr(value, "__module__", None) == data.__name__
                                                      or (name.isupper() and not inspect.ismodule(value)))}
    assert set(data.__all__) == defined_here
    # The checksum helpers are how load_sr_images checks its file, not an API of their own.
    assert not {"sha256_of", "read_checksums", "verified_path"} & set(dir(data))


def test_loader_carries_soft_targets_with_their_inputs():
    X = torch.arange(10.0).reshape(10, 1)
    q = torch.softmax(torch.arange(30.0).reshape(10, 3), dim=1)  # a teacher's probabilities, one row per input
    for xb, qb in data.make_loader(X, q, 4, shuffle=True, seed=0):
        assert qb.shape == (len(xb), 3)
        torch.testing.assert_close(qb, q[xb[:, 0].long()])  # each row still beside its own input
