"""Build datasets/sr_images.npz from photographs that ship inside scikit-image and matplotlib.

Run with `make datasets`. Each image is converted to grey scale, centre-cropped to a square,
resized to 128x128 with anti-aliasing and stored as uint8. The script then rewrites
SHA256SUMS, which compresskit.data checks on every load. The build is deterministic: running
it again gives the same bytes (tests/test_data.py checks that).
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np

SIZE = 128
HERE = Path(__file__).resolve().parent


def sources() -> dict[str, np.ndarray]:
    import matplotlib.cbook
    import matplotlib.image
    import skimage.data

    images = {name: getattr(skimage.data, name)() for name in
              ("camera", "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "brick")}
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        images["grace_hopper"] = matplotlib.image.imread(f)
    return images


def prepare(img: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2gray
    from skimage.transform import resize

    img = np.asarray(img)
    if img.ndim == 3:
        img = rgb2gray(img[..., :3])
    else:
        img = img / 255.0
    h, w = img.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = img[top:top + side, left:left + side]
    img = resize(img, (SIZE, SIZE), anti_aliasing=True)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz archive with fixed timestamps, so the same arrays always give the same bytes."""
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            member = BytesIO()
            np.save(member, arrays[name], allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def build(out_dir: Path = HERE) -> Path:
    data = npz_bytes({name: prepare(img) for name, img in sources().items()})
    out = out_dir / "sr_images.npz"
    out.write_bytes(data)
    (out_dir / "SHA256SUMS").write_text(f"{hashlib.sha256(data).hexdigest()}  {out.name}\n")
    return out


if __name__ == "__main__":
    path = build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    print(f"wrote {path} ({path.stat().st_size} bytes) and its checksum")
