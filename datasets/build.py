"""Build datasets/sr_images.npz from photographs that ship inside scikit-image, scikit-learn and matplotlib.

Run with `make datasets`. Nothing is resized: super-resolution learns the detail of real
photographs, and shrinking them (with anti-aliasing) first would remove most of it.

* Held-out images (``HELD_OUT``: camera, astronaut): one native-resolution crop of ``CROP`` x
  ``CROP`` pixels from each, at the position given (the cameraman's head, camera and hands;
  the astronaut's face and collar ring). Nothing else of them is used, and no crop of them is
  among the training images.
* Training images (``TRAINING``): one native-resolution ``CROP`` x ``CROP`` crop from each
  photograph, at the position given below (the centre where None).

Colour images become grey with the weights scikit-image's ``rgb2gray`` uses (ITU-R BT.709
luma, R 0.2125, G 0.7154, B 0.0721), computed in integers so that every machine rounds the
same way; values are stored as uint8 under the image's name. The script then writes the
file's line of SHA256SUMS (other lines kept), which compresskit.data checks on every load. The build is deterministic: running
it again gives the same bytes (tests/test_data.py checks that), given the same JPEG decoder
(Pillow's libjpeg-turbo) for the four JPEG sources.
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CROP = 256
HELD_OUT = {"camera": (64, 128), "astronaut": (32, 160)}  # name -> (top, left) of the test crop
# name -> (top, left) of the training crop, None for the centre
TRAINING = {
    "coffee": None, "chelsea": None, "rocket": None, "hubble_deep_field": None, "brick": None,
    "grass": None, "gravel": None, "coins": None, "moon": None,     # scikit-image
    "china": None, "flower": None,                                   # scikit-learn
    "grace_hopper": None,                                            # matplotlib
}
BT709 = (2125, 7154, 721)  # skimage.color.rgb2gray's weights, times 10,000


def sources() -> dict[str, np.ndarray]:
    """Each photograph as shipped (uint8, grey (H, W) or RGB(A) (H, W, C))."""
    import matplotlib.cbook
    import matplotlib.image
    import skimage.data
    from sklearn.datasets import load_sample_images

    images = {name: getattr(skimage.data, name)() for name in
              (*HELD_OUT, *(n for n in TRAINING if hasattr(skimage.data, n)))}
    samples = load_sample_images()
    for path, img in zip(samples.filenames, samples.images):
        images[Path(path).stem] = img  # china, flower
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        images["grace_hopper"] = matplotlib.image.imread(f)
    return {name: np.asarray(img) for name, img in images.items()}


def grey(img: np.ndarray) -> np.ndarray:
    """uint8 grey: BT.709 luma of an RGB(A) image, rounded half up in integer arithmetic."""
    if img.dtype != np.uint8:
        raise ValueError(f"`img` must be uint8; got {img.dtype}")
    if img.ndim == 2:
        return img
    rgb = img[..., :3].astype(np.int64)
    weighted = rgb @ np.array(BT709, dtype=np.int64)
    return ((weighted + 5000) // 10000).astype(np.uint8)


def crop(img: np.ndarray, where: tuple[int, int] | None, size: int = CROP) -> np.ndarray:
    """A ``size`` x ``size`` crop at (top, left), or at the centre for None."""
    h, w = img.shape
    top, left = where if where is not None else ((h - size) // 2, (w - size) // 2)
    if not (0 <= top <= h - size and 0 <= left <= w - size):
        raise ValueError(f"a {size} x {size} crop at {(top, left)} does not fit an image of {h} x {w}")
    return img[top:top + size, left:left + size]


def prepare(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The stored arrays: one crop of each image, grey uint8."""
    out = {name: crop(grey(images[name]), where) for name, where in HELD_OUT.items()}
    out.update({name: crop(grey(images[name]), where) for name, where in TRAINING.items()})
    return out


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz archive with fixed timestamps, so the same arrays always give the same bytes."""
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            member = BytesIO()
            np.save(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def write_checksum(sums: Path, name: str, digest: str) -> None:
    """Set ``name``'s line of the ``sha256sum``-style file ``sums`` to ``digest``, keeping the
    other files' lines (datasets/build_lm.py writes its own), sorted by file name."""
    lines = {}
    if sums.is_file():
        for line in sums.read_text().splitlines():
            if line.strip():
                other_digest, other = line.split(maxsplit=1)
                lines[other.strip().lstrip("*")] = other_digest
    lines[name] = digest
    sums.write_text("".join(f"{lines[n]}  {n}\n" for n in sorted(lines)))


def build(out_dir: Path = HERE) -> Path:
    data = npz_bytes(prepare(sources()))
    out = out_dir / "sr_images.npz"
    out.write_bytes(data)
    write_checksum(out_dir / "SHA256SUMS", out.name, hashlib.sha256(data).hexdigest())
    return out


if __name__ == "__main__":
    path = build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    print(f"wrote {path} ({path.stat().st_size} bytes) and its checksum")
