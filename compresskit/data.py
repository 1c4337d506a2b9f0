"""Data for the course, all offline.

* The handwritten digits that ship with scikit-learn (1797 images of 8x8 pixels, 10 classes),
  split once, stratified and with a fixed seed, into train (60%), validation (20%) and test (20%).
* A small set of grey-scale photographs for super-resolution at their native resolution
  (256 x 256 crops: two held out for testing, twelve for training), built by
  ``datasets/build.py`` from images that ship inside scikit-image, scikit-learn and matplotlib,
  and verified against ``datasets/SHA256SUMS`` every time it is loaded.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from compresskit._validation import check_array, check_int

__all__ = [
    "DATASETS_DIR",
    "DigitsSplit",
    "IMAGE_SHAPE",
    "NUM_CLASSES",
    "SR_HELD_OUT",
    "SR_IMAGES_FILE",
    "calibration_batch",
    "digits_loaders",
    "load_digits_split",
    "load_sr_images",
    "make_loader",
    "to_images",
]

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)  # (C, H, W) of one digit


@dataclass(frozen=True)
class DigitsSplit:
    """The digits, split. ``X_*`` are float32 of shape (N, 64) in [0, 1]; ``y_*`` are int64 labels."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def tensors(self, part: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``part`` in {"train", "val", "test"} as torch tensors: images (N, 1, 8, 8) and labels (N,)."""
        if part not in ("train", "val", "test"):
            raise ValueError(f"`part` must be one of ['train', 'val', 'test']; got {part!r}")
        X = getattr(self, f"X_{part}")
        y = getattr(self, f"y_{part}")
        return to_images(X), torch.from_numpy(y.copy())


@functools.lru_cache(maxsize=4)
def load_digits_split(seed: int = 0) -> DigitsSplit:
    """scikit-learn's digits, split 60 / 20 / 20 into train / val / test, stratified by class.

    The same ``seed`` always gives the same split; the course uses ``seed=0`` everywhere.
    The arrays are read-only, so a chapter cannot change the data another cell sees.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    seed = check_int("seed", seed, 0)
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)  # pixel values 0..16 -> [0, 1]
    y = digits.target.astype(np.int64)
    X_train, X_rest, y_train, y_rest = train_test_split(X, y, test_size=0.4, stratify=y, random_state=seed)
    X_val, X_test, y_val, y_test = train_test_split(
        X_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=seed
    )
    arrays = [X_train, y_train, X_val, y_val, X_test, y_test]
    for a in arrays:
        a.setflags(write=False)
    return DigitsSplit(*arrays)


def to_images(X: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Flat digits (N, 64) -> float32 image tensor (N, 1, 8, 8)."""
    X = torch.tensor(np.array(X, dtype=np.float32))
    if X.dim() != 2 or X.shape[1] != 64:
        raise ValueError(f"`X` must have shape (N, 64); got {tuple(X.shape)}")
    return X.reshape(-1, *IMAGE_SHAPE).clone()


def make_loader(
    X: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    batch_size: int = 64,
    *,
    shuffle: bool = False,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader over in-memory tensors. Shuffling draws from its own seeded generator,
    so two loaders made with the same arguments yield the same batches."""
    batch_size = check_int("batch_size", batch_size, 1)
    X = torch.as_tensor(X)
    y = torch.as_tensor(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"`X` and `y` must have the same length; got {X.shape[0]} and {y.shape[0]}")
    if X.shape[0] == 0:
        raise ValueError("`X` must not be empty; got 0 samples")
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0))
    dataset = TensorDataset(X, y)
    order = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    # Index the tensors once per batch (not once per sample): the same batches, in the same
    # order, as DataLoader(dataset, batch_size, shuffle, generator=generator), several times faster.
    batches = BatchSampler(order, batch_size, drop_last=False)
    return DataLoader(dataset, batch_size=None, sampler=batches, generator=generator)


def digits_loaders(batch_size: int = 64, seed: int = 0) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Train (shuffled), validation and test loaders over the digits split, images (B, 1, 8, 8)."""
    split = load_digits_split()
    train = make_loader(*split.tensors("train"), batch_size, shuffle=True, seed=seed)
    val = make_loader(*split.tensors("val"), 512)
    test = make_loader(*split.tensors("test"), 512)
    return train, val, test


def calibration_batch(n: int = 256, seed: int = 0) -> torch.Tensor:
    """``n`` images drawn without replacement from the training split, for calibrating quantizers."""
    seed = check_int("seed", seed, 0)
    X, _ = load_digits_split().tensors("train")
    n = check_int("n", n, 1, X.shape[0])
    idx = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    return X[idx]


# --- the super-resolution image set -------------------------------------------------------

DATASETS_DIR = Path(os.environ.get("COMPRESSKIT_DATASETS", Path(__file__).resolve().parents[1] / "datasets"))
SR_IMAGES_FILE = "sr_images.npz"
SR_HELD_OUT = ("astronaut", "camera")  # test images: no crop of them is in the training set


def _sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_checksums(directory: Path) -> dict[str, str]:
    """``SHA256SUMS`` as written by ``sha256sum``: ``<hex>  <file name>`` per line."""
    sums = directory / "SHA256SUMS"
    if not sums.is_file():
        raise FileNotFoundError(f"{sums} is missing: it lists the expected checksum of each data file")
    table = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            table[name.strip().lstrip("*")] = digest
    return table


def _verified_path(name: str, directory: Path | str | None = None) -> Path:
    """The path of data file ``name`` after checking it exists and matches its checksum."""
    directory = Path(directory) if directory is not None else DATASETS_DIR
    path = directory / name
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} is missing; rebuild it with `make datasets`")
    expected = _read_checksums(directory).get(name)
    if expected is None:
        raise ValueError(f"data file {name!r} has no entry in {directory / 'SHA256SUMS'}")
    got = _sha256_of(path)
    if got != expected:
        raise ValueError(
            f"data file {path} is corrupt: SHA-256 must be {expected}; got {got}. "
            "Restore it with `git checkout -- datasets/` or rebuild it with `make datasets`"
        )
    return path


def load_sr_images(directory: Path | str | None = None) -> dict[str, np.ndarray]:
    """The super-resolution images: name -> uint8 array (H, W), grey scale, native resolution.

    Every image is a 256 x 256 crop at native resolution; ``SR_HELD_OUT`` (camera, astronaut)
    are for testing only, the others for training. Sources, crops and licences are in
    ``datasets/README.md``. The file is checked against its
    SHA-256 before it is read; a missing or corrupt file raises an error that names it.
    """
    path = _verified_path(SR_IMAGES_FILE, directory)
    with np.load(path, allow_pickle=False) as archive:
        images = {name: archive[name] for name in archive.files}
    for name, img in images.items():
        check_array(f"image {name!r}", img, ndim=2)
    return images
