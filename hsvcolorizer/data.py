"""Training data: image folders, the Places365-standard layout, the grayscale
filter, the train/validation split, random crops and flips, and the compact
uint8 cache that `hsvcolorizer prepare` writes."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.imageio import iter_image_files, pixel_limit, read_image

CACHE_META = "hsvcolorizer-cache.json"
CACHE_ARRAY = "images.npy"

# A photo is treated as grayscale (and left out of training) when its mean
# chroma, max(R,G,B) - min(R,G,B), is below this many 8-bit levels (on a
# 96-px thumbnail). Measured on ../shared/data/photos/train: its 36 gray and
# near-gray photos score 0 to 0.22; the least colourful real colour photos
# (dim, brownish scenes) start at 1.5, and they should still be learned from.
GRAY_CHROMA_THRESHOLD = 1.0

# Share of the files held out for validation when no validation folder is given.
VAL_FRACTION = 0.05


@dataclass
class ImageList:
    """Training or validation files after the grayscale filter."""

    files: list[Path]
    excluded_gray: list[Path] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)


def find_images(root: Path, split: str = "train") -> list[Path]:
    """All image files under `root`: its Places365-standard list if it has one
    (places365_train_standard.txt with data_256/, places365_val.txt with
    val_256/), otherwise every image in the folder tree."""
    root = Path(root)
    if not root.is_dir():
        raise ColorizerError(f"data folder {root} does not exist")
    places = {
        "train": ("places365_train_standard.txt", "data_256"),
        "val": ("places365_val.txt", "val_256"),
    }[split]
    listing, folder = root / places[0], root / places[1]
    if listing.is_file() and folder.is_dir():
        files = []
        for line in listing.read_text().splitlines():
            name = line.split()[0].lstrip("/") if line.strip() else ""
            if name:
                files.append(folder / name)
        return files
    return iter_image_files(root, recursive=True)


def split_train_val(files: list[Path], root: Path, fraction: float = VAL_FRACTION) -> tuple[list[Path], list[Path]]:
    """Deterministic split by a hash of each file's path relative to `root`:
    the same file always lands on the same side, also when files are added."""
    train, val = [], []
    for f in files:
        rel = str(Path(f).relative_to(root)) if Path(f).is_relative_to(root) else str(f)
        bucket = int(hashlib.sha1(rel.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
        (val if bucket < fraction else train).append(f)
    return train, val


def mean_chroma(rgb: np.ndarray) -> float:
    """HxWx3 uint8 RGB -> mean of max(R,G,B) - min(R,G,B) in 8-bit levels."""
    x = rgb.astype(np.int16)
    return float((x.max(2) - x.min(2)).mean())


def is_grayscale(rgb: np.ndarray) -> bool:
    """HxWx3 uint8 RGB (or HxW) -> True when the photo has (almost) no colour."""
    return rgb.ndim == 2 or mean_chroma(rgb) < GRAY_CHROMA_THRESHOLD


def _thumb_rgb(path: Path, side: int = 96) -> np.ndarray | None:
    """Small HxWx3 uint8 RGB version of a photo for the grayscale check, or None if unreadable."""
    try:
        with Image.open(path) as im:
            if im.width * im.height > pixel_limit():
                return None  # a decompression bomb, or just above the limit: read_image would refuse it too
            im.draft("RGB", (side, side))  # JPEG decodes at reduced size: fast
            im = im.convert("RGB")
            im.thumbnail((side, side))
            return np.asarray(im)
    except Exception:  # noqa: BLE001 - any decoder failure means "unreadable"
        return None


def filter_grayscale(files: list[Path], workers: int | None = None) -> ImageList:
    """Drop grayscale and unreadable photos; the method trains on colour only."""
    workers = workers or min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(workers) as pool:
        thumbs = list(pool.map(_thumb_rgb, files))
    out = ImageList(files=[])
    for f, t in zip(files, thumbs):
        if t is None:
            out.unreadable.append(f)
        elif is_grayscale(t):
            out.excluded_gray.append(f)
        else:
            out.files.append(f)
    return out


def load_square(path: Path, size: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Photo -> sizexsizex3 uint8 RGB: short side resized to `size`, then a
    random crop (rng given) or the centre crop (rng None)."""
    photo = read_image(path)
    px = photo.pixels
    if px.dtype == np.uint16:
        px = (px / 257.0 + 0.5).astype(np.uint8)
    if px.ndim == 2:
        px = np.repeat(px[..., None], 3, axis=2)
    h, w = px.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    px = cv2.resize(px, (nw, nh), interpolation=interp)
    if rng is None:
        top, left = (nh - size) // 2, (nw - size) // 2
    else:
        top, left = int(rng.integers(0, nh - size + 1)), int(rng.integers(0, nw - size + 1))
    return np.ascontiguousarray(px[top : top + size, left : left + size])


class FolderDataset(torch.utils.data.Dataset):
    """Photos from files: random crop + horizontal flip (train) or centre crop (val).

    Items are 3xSxS uint8 RGB tensors. The randomness of item i in epoch e is
    seeded by (seed, e, i), so a resumed run sees exactly the same crops.
    """

    def __init__(self, files: list[Path], size: int, train: bool = True, seed: int = 0):
        self.files, self.size, self.train, self.seed = list(files), size, train, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.train else None
        img = load_square(self.files[i], self.size, rng)
        if rng is not None and rng.random() < 0.5:
            img = img[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)


# ---------------------------------------------------------------------------
# The prepared cache: one uint8 array, read without decoding any JPEG
# ---------------------------------------------------------------------------


def is_cache(path: Path) -> bool:
    return (Path(path) / CACHE_META).is_file()


def prepare_cache(src: Path, out: Path, size: int = 256, split: str = "train", progress=None) -> dict:
    """Decode every colour photo under `src` once into `out/images.npy`
    (Nxsizexsizex3 uint8 RGB, short side resized to `size`, centre crop) and
    `out/hsvcolorizer-cache.json`. Returns the metadata written."""
    src, out = Path(src), Path(out)
    files = find_images(src, split)
    if not files:
        raise ColorizerError(f"no images found in {src}")
    kept = filter_grayscale(files)
    if not kept.files:
        raise ColorizerError(f"no colour photos in {src}: all {len(files)} are grayscale or unreadable")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (CACHE_ARRAY + ".partial")
    _fill_cache(tmp, kept.files, size, progress)
    os.replace(tmp, out / CACHE_ARRAY)
    meta = {
        "size": size,
        "count": len(kept.files),
        "excluded_gray": len(kept.excluded_gray),
        "unreadable": len(kept.unreadable),
        "source": str(src),
        "files": [str(f.relative_to(src)) if f.is_relative_to(src) else str(f) for f in kept.files],
    }
    tmp_meta = out / (CACHE_META + ".partial")
    tmp_meta.write_text(json.dumps(meta, indent=1))
    os.replace(tmp_meta, out / CACHE_META)
    return meta


def _fill_cache(path: Path, files: list[Path], size: int, progress=None) -> None:
    """Decode `files` into a new Nxsizexsizex3 uint8 .npy at `path`; the
    memory map is closed on return, so the file can be renamed on any OS."""
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(len(files), size, size, 3))

    def work(i: int) -> None:
        arr[i] = load_square(files[i], size)

    with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
        for _ in (progress or (lambda it, **_: it))(pool.map(work, range(len(files))), total=len(files)):
            pass
    arr.flush()


class CacheArray:
    """A prepared cache opened for training: `images` is an NxSxSx3 uint8 array (memory-mapped)."""

    def __init__(self, path: Path):
        path = Path(path)
        try:
            self.meta = json.loads((path / CACHE_META).read_text())
            self.images = np.load(path / CACHE_ARRAY, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise ColorizerError(f"the prepared cache in {path} is damaged ({e}); run hsvcolorizer prepare again") from e
        if self.images.ndim != 4 or self.images.shape[3] != 3 or self.images.dtype != np.uint8:
            raise ColorizerError(f"the prepared cache in {path} has an unexpected layout; run hsvcolorizer prepare again")

    def __len__(self) -> int:
        return self.images.shape[0]


def crop_flip_batch(images: torch.Tensor, idx: torch.Tensor, crop: int, gen: torch.Generator, train: bool) -> torch.Tensor:
    """NxSxSx3 uint8 (any device) and B indices -> Bx3xcropxcrop uint8 on that device.

    One random offset and flip per sample (train) or the centre crop (val).
    Runs where `images` lives, so on a GPU the whole pipeline stays on the GPU.
    """
    side = images.shape[1]
    batch = images[idx.to(images.device)]  # BxSxSx3
    b = batch.shape[0]
    if crop < side or train:
        if train:
            tops = torch.randint(0, side - crop + 1, (b,), generator=gen).tolist()
            lefts = torch.randint(0, side - crop + 1, (b,), generator=gen).tolist()
            flips = (torch.rand(b, generator=gen) < 0.5).tolist()
        else:
            tops = lefts = [(side - crop) // 2] * b
            flips = [False] * b
        out = []
        for k in range(b):
            x = batch[k, tops[k] : tops[k] + crop, lefts[k] : lefts[k] + crop]
            out.append(x.flip(1) if flips[k] else x)
        batch = torch.stack(out)
    return batch.permute(0, 3, 1, 2).contiguous()
