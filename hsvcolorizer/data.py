"""Training data: image folders, the Places365-standard layout, the grayscale
filter, the train/validation split, random crops and flips, and the compact
uint8 cache that `hsvcolorizer prepare` writes."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from hsvcolorizer.atomic import fsync_file, fsync_folder
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.imageio import gray_check_thumbnail, is_grayscale, iter_image_files, read_image, to_8bit

# The grayscale filter asks the question the application and `evaluate` ask:
# imageio.is_grayscale, one function with one threshold. Its names stay
# importable from here.
from hsvcolorizer.imageio import GRAY_CHROMA_THRESHOLD, mean_chroma  # noqa: F401

CACHE_META = "hsvcolorizer-cache.json"
CACHE_ARRAY = "images.npy"
CACHE_SIZES = "sizes.npy"

# Random-resized crops: the share of the photo's area a crop covers, and
# the range of its aspect ratio (width / height), drawn log-uniformly.
CROP_AREA = (0.35, 1.0)
CROP_ASPECT = (3 / 4, 4 / 3)
# The prepared cache keeps each photo's long side up to this many times its
# short side (the centre of wider photos), so crops of any aspect in
# CROP_ASPECT fit.
CANVAS_ASPECT = 4 / 3

# Share of the files held out for validation when no validation folder is given.
VAL_FRACTION = 0.05
# From this many files on, at least one is held out even when 5 % is none.
MIN_FILES_TO_HOLD_OUT = 4


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
    buckets = []
    for f in files:
        rel = str(Path(f).relative_to(root)) if Path(f).is_relative_to(root) else str(f)
        bucket = int(hashlib.sha1(rel.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
        buckets.append(bucket)
        (val if bucket < fraction else train).append(f)
    if not val and len(files) >= MIN_FILES_TO_HOLD_OUT:
        # A small folder still holds one photo out (the one with the lowest
        # hash, so the choice is as stable as the split), or its run would
        # never show validation figures or previews.
        keep = files[min(range(len(files)), key=buckets.__getitem__)]
        train, val = [f for f in train if f is not keep], [keep]
    return train, val


def _thumb_rgb(path: Path) -> np.ndarray | None:
    """The small 8-bit picture the grayscale check judges
    (imageio.gray_check_thumbnail of the decoded photo), or None if unreadable.

    The photo is decoded as colorizing it would decode it (read_image: the
    pixel limit, 16 bits kept until to_8bit), so a photo left out of training
    as gray is exactly one the application and `evaluate` call gray.
    """
    try:
        return gray_check_thumbnail(read_image(path).pixels)
    except Exception:  # noqa: BLE001 - read_image's ColorizerError (damaged, above the pixel limit) or any other
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


_SYNSET = re.compile(r"^n\d{8}$")
# File-name prefixes that name a camera or an app, not a source of photos:
# a phone's IMG_ and a camera's DSC_ photos in one folder are one source.
_DEVICE_PREFIXES = {"img", "dsc", "dscn", "dscf", "dsc0", "pxl", "mvimg", "vid", "dcim", "p", "pano", "photo",
                    "image", "screenshot", "scan", "wp", "gopr", "dji", "sam", "pic"}


def source_of(path: Path, root: Path) -> str:
    """The source a training photo comes from, for sampling sources evenly.

    Photos in subfolders belong to their top folder; photos directly in the
    root to their file name's prefix before the first "_" (``faces_123.jpg``
    is "faces"; ImageNet's ``n01440764_…`` synsets are one source,
    "imagenet"). A name without "_", or whose prefix names a camera or an app
    (``IMG_``, ``DSC_``, ``PXL_``, …), has no source prefix: all such photos are
    one source.
    """
    rel = Path(path).relative_to(root) if Path(path).is_relative_to(root) else Path(Path(path).name)
    if len(rel.parts) > 1:
        return rel.parts[0]
    stem = rel.stem
    prefix = stem.split("_", 1)[0] if "_" in stem else ""
    if prefix.lower() in _DEVICE_PREFIXES:
        return ""
    return "imagenet" if _SYNSET.match(prefix) else prefix


def balanced_indices(sources: list[str], count: int, gen: torch.Generator) -> list[int]:
    """`count` photo indices drawn so that every source is equally likely
    (then every photo of that source): a source of 300 photos is seen as
    often as one of 5,000, which a shuffle of files would drown."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(sources):
        groups.setdefault(s, []).append(i)
    members = list(groups.values())
    pick = torch.randint(0, len(members), (count,), generator=gen).tolist()
    within = torch.rand(count, generator=gen).tolist()
    return [members[g][min(int(u * len(members[g])), len(members[g]) - 1)] for g, u in zip(pick, within)]


def random_resized_box(height: int, width: int, draw) -> tuple[int, int, int, int]:
    """A random crop box (top, left, crop height, crop width) of an HxW photo:
    CROP_AREA of its area, aspect in CROP_ASPECT (log-uniform). `draw()`
    returns a uniform float in [0, 1). After ten misses (a photo much
    narrower than the aspect asks), the largest centred box of a valid aspect."""
    area = height * width
    lo, hi = math.log(CROP_ASPECT[0]), math.log(CROP_ASPECT[1])
    for _ in range(10):
        a = area * (CROP_AREA[0] + draw() * (CROP_AREA[1] - CROP_AREA[0]))
        r = math.exp(lo + draw() * (hi - lo))
        cw, ch = int(round(math.sqrt(a * r))), int(round(math.sqrt(a / r)))
        if 0 < cw <= width and 0 < ch <= height:
            return int(draw() * (height - ch + 1)), int(draw() * (width - cw + 1)), ch, cw
    r = min(max(width / height, CROP_ASPECT[0]), CROP_ASPECT[1])
    cw, ch = min(width, int(round(height * r))), min(height, int(round(width / r)))
    return (height - ch) // 2, (width - cw) // 2, ch, cw


def load_resized_crop(path: Path, size: int, rng: np.random.Generator) -> np.ndarray:
    """Photo -> sizexsizex3 uint8 RGB: a random-resized crop (random_resized_box)
    resized to `size`, with area interpolation when shrinking."""
    px = _rgb8(read_image(path).pixels)
    h, w = px.shape[:2]
    top, left, ch, cw = random_resized_box(h, w, rng.random)
    crop = px[top : top + ch, left : left + cw]
    interp = cv2.INTER_AREA if min(ch, cw) > size else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(crop, (size, size), interpolation=interp))


def _rgb8(px: np.ndarray) -> np.ndarray:
    """Decoded pixels (HxW or HxWx3, uint8 or uint16) -> HxWx3 uint8 RGB."""
    px = to_8bit(px)
    if px.ndim == 2:
        px = np.repeat(px[..., None], 3, axis=2)
    return px


def _short_side(px: np.ndarray, size: int) -> np.ndarray:
    """HxWx3 uint8 RGB -> the same with its short side resized to `size`
    (area interpolation when shrinking, cubic when enlarging)."""
    h, w = px.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) == (h, w):
        return px
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(px, (nw, nh), interpolation=interp)


def load_square(path: Path, size: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Photo -> sizexsizex3 uint8 RGB: short side resized to `size`, then a
    random crop (rng given) or the centre crop (rng None)."""
    px = _short_side(_rgb8(read_image(path).pixels), size)
    nh, nw = px.shape[:2]
    if rng is None:
        top, left = (nh - size) // 2, (nw - size) // 2
    else:
        top, left = int(rng.integers(0, nh - size + 1)), int(rng.integers(0, nw - size + 1))
    return np.ascontiguousarray(px[top : top + size, left : left + size])


class FolderDataset(torch.utils.data.Dataset):
    """Photos from files: random crop + horizontal flip (train) or centre crop (val).

    Items are 3xSxS uint8 RGB tensors. The randomness of item i in epoch e is
    seeded by (seed, e, i), so a resumed run sees exactly the same crops.
    crop "resized" takes random-resized crops (random_resized_box), "plain"
    a random square of the photo with its short side resized to S (v1).
    """

    def __init__(self, files: list[Path], size: int, train: bool = True, seed: int = 0, crop: str = "plain"):
        self.files, self.size, self.train, self.seed, self.crop = list(files), size, train, seed, crop
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.train else None
        if rng is not None and self.crop == "resized":
            img = load_resized_crop(self.files[i], self.size, rng)
        else:
            img = load_square(self.files[i], self.size, rng)
        if rng is not None and rng.random() < 0.5:
            img = img[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)


# ---------------------------------------------------------------------------
# The prepared cache: one uint8 array, read without decoding any JPEG
# ---------------------------------------------------------------------------


def is_cache(path: Path) -> bool:
    return (Path(path) / CACHE_META).is_file()


def canvas_side(size: int) -> int:
    """Side of the square canvas a prepared photo of short side `size` lives in."""
    return int(math.ceil(size * CANVAS_ASPECT / 4)) * 4


def load_canvas_photo(path: Path, size: int) -> np.ndarray:
    """Photo -> HxWx3 uint8 RGB with its short side resized to `size` and its
    long side at most canvas_side(size) (the centre of wider photos)."""
    px = _short_side(_rgb8(read_image(path).pixels), size)
    nh, nw = px.shape[:2]
    side = canvas_side(size)
    top, left = max(0, (nh - side) // 2), max(0, (nw - side) // 2)
    return np.ascontiguousarray(px[top : top + min(nh, side), left : left + min(nw, side)])


def prepare_cache(src: Path, out: Path, size: int = 256, split: str = "train", progress=None) -> dict:
    """Decode every colour photo under `src` once into a uint8 cache in `out`:
    `images.npy` (NxCxCx3 uint8 RGB, C = canvas_side(size)) holds each photo
    with its short side resized to `size` (long side up to C, centred) in the
    canvas's top-left corner, `sizes.npy` (Nx2 int32) its height and width,
    and `hsvcolorizer-cache.json` the metadata (files and their sources).
    Returns the metadata written."""
    src, out = Path(src), Path(out)
    files = find_images(src, split)
    if not files:
        raise ColorizerError(f"no images found in {src}")
    kept = filter_grayscale(files)
    if not kept.files:
        raise ColorizerError(f"no colour photos in {src}: all {len(files)} are grayscale or unreadable")
    out.mkdir(parents=True, exist_ok=True)
    # Everything is written beside the cache as .partial files first; the
    # commit renames them into place, the metadata (what makes the folder a
    # cache, is_cache) last. Any failure, an interruption included, removes
    # the .partial files: an earlier cache stays as it was, usable, unless
    # the failure hits the commit itself, which then leaves no cache at all
    # rather than half of one.
    tmp = out / (CACHE_ARRAY + ".partial")
    tmp_sizes = out / (CACHE_SIZES + ".partial")
    tmp_meta = out / (CACHE_META + ".partial")
    committing = False
    try:
        sizes = _fill_cache(tmp, kept.files, size, progress)
        with open(tmp_sizes, "wb") as f:
            np.save(f, sizes)
        meta = {
            "size": size,
            "layout": "canvas",
            "count": len(kept.files),
            "excluded_gray": len(kept.excluded_gray),
            "unreadable": len(kept.unreadable),
            "source": str(src),
            "files": [str(f.relative_to(src)) if f.is_relative_to(src) else str(f) for f in kept.files],
            "sources": [source_of(f, src) for f in kept.files],
        }
        tmp_meta.write_text(json.dumps(meta, indent=1))
        # atomic_write's policy, for three files committed together: each is
        # on disk before any rename, and the renames are made to last.
        for p in (tmp, tmp_sizes, tmp_meta):
            fsync_file(p)
        # The old cache stops being one before its arrays are replaced.
        (out / CACHE_META).unlink(missing_ok=True)
        committing = True
        os.replace(tmp_sizes, out / CACHE_SIZES)
        os.replace(tmp, out / CACHE_ARRAY)
        os.replace(tmp_meta, out / CACHE_META)
        fsync_folder(out)
    except BaseException:
        for p in (tmp, tmp_sizes, tmp_meta) + ((out / CACHE_SIZES, out / CACHE_ARRAY) if committing else ()):
            try:
                p.unlink(missing_ok=True)
            except OSError:
                pass
        raise
    return meta


def _fill_cache(path: Path, files: list[Path], size: int, progress=None) -> np.ndarray:
    """Decode `files` into a new NxCxCx3 uint8 .npy at `path` (see
    prepare_cache) and return their Nx2 sizes; the memory map is closed on
    return, so the file can be renamed on any OS. On any failure the decoding
    still queued is cancelled, the map closed and `path` removed."""
    side = canvas_side(size)
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(len(files), side, side, 3))
    sizes = np.zeros((len(files), 2), np.int32)

    def work(i: int) -> None:
        px = load_canvas_photo(files[i], size)
        arr[i, : px.shape[0], : px.shape[1]] = px
        sizes[i] = px.shape[:2]

    pool = ThreadPoolExecutor(max(1, os.cpu_count() or 1))
    try:
        try:
            for _ in (progress or (lambda it, **_: it))(pool.map(work, range(len(files))), total=len(files)):
                pass
        finally:
            # On a failure, do not decode the rest of the folder first
            # (a plain `with` would); wait only for the photos in hand.
            pool.shutdown(wait=True, cancel_futures=True)
        arr.flush()
    except BaseException:
        del arr
        Path(path).unlink(missing_ok=True)
        raise
    del arr
    return sizes


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
        n, side = self.images.shape[0], self.images.shape[1]
        if (path / CACHE_SIZES).is_file():
            self.sizes = np.load(path / CACHE_SIZES)
            if self.sizes.shape != (n, 2):
                raise ColorizerError(f"the prepared cache in {path} is damaged (sizes); run hsvcolorizer prepare again")
        else:  # a cache of squares from before canvases
            self.sizes = np.full((n, 2), side, np.int32)
        self.sources = list(self.meta.get("sources") or [""] * n)
        if len(self.sources) != n:
            self.sources = [""] * n

    def __len__(self) -> int:
        return self.images.shape[0]


def crop_flip_batch(images: torch.Tensor, idx: torch.Tensor, crop: int, gen: torch.Generator, train: bool,
                    sizes: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
    """NxCxCx3 uint8 canvases (any device) and B indices -> Bx3xcropxcrop uint8 on that device.

    One random offset and flip per sample (train) or the centre crop (val),
    inside each photo's (height, width) from `sizes` (whole canvases if None;
    a photo smaller than the crop is taken from the canvas's corner).
    Runs where `images` lives, so on a GPU the whole pipeline stays on the GPU.
    """
    side = images.shape[1]
    batch = images[idx.to(images.device)]  # BxCxCx3
    out = []
    for k, i in enumerate(idx.tolist()):
        h, w = (int(sizes[i][0]), int(sizes[i][1])) if sizes is not None else (side, side)
        h, w = max(h, crop), max(w, crop)
        if train:
            top = int(torch.randint(0, h - crop + 1, (), generator=gen))
            left = int(torch.randint(0, w - crop + 1, (), generator=gen))
            flip = bool(torch.rand((), generator=gen) < 0.5)
        else:
            top, left, flip = (h - crop) // 2, (w - crop) // 2, False
        x = batch[k, top : top + crop, left : left + crop]
        out.append(x.flip(1) if flip else x)
    return torch.stack(out).permute(0, 3, 1, 2).contiguous()


def resized_crop_batch(images: torch.Tensor, sizes: torch.Tensor, idx: torch.Tensor, crop: int,
                       gen: torch.Generator, train: bool) -> torch.Tensor:
    """Random-resized crops and flips of cached photos, where `images` lives.

    images: NxCxCx3 uint8 RGB canvases (any device); sizes: Nx2 (height,
    width) of the photo in each canvas's top-left corner; B indices ->
    Bx3xcropxcrop uint8. train: a random_resized_box and a coin-flip mirror
    per sample; else the largest centred square. All B crops are sampled in
    one bilinear grid_sample, so on a GPU no photo leaves the GPU.
    """
    dev = images.device
    batch = images[idx.to(dev)].permute(0, 3, 1, 2).float()  # BxCxHcxWc
    b, side = batch.shape[0], batch.shape[-1]
    theta = torch.zeros(b, 2, 3)
    for k, i in enumerate(idx.tolist()):
        h, w = int(sizes[i, 0]), int(sizes[i, 1])
        if train:
            top, left, ch, cw = random_resized_box(h, w, lambda: float(torch.rand((), generator=gen)))
            flip = bool(torch.rand((), generator=gen) < 0.5)
        else:
            s = min(h, w)
            top, left, ch, cw, flip = (h - s) // 2, (w - s) // 2, s, s, False
        # Output pixel centres map onto the box's pixel centres (align_corners=False).
        theta[k, 0, 0] = (-cw if flip else cw) / side
        theta[k, 0, 2] = (2 * left + cw) / side - 1
        theta[k, 1, 1] = ch / side
        theta[k, 1, 2] = (2 * top + ch) / side - 1
    grid = torch.nn.functional.affine_grid(theta.to(dev), [b, 3, crop, crop], align_corners=False)
    # Keep every sample on the photo's own pixel centres: a box at the
    # photo's bottom or right edge would otherwise blend in the canvas
    # beyond it (black) when the crop is enlarged.
    hw = torch.as_tensor(np.asarray(sizes)[idx.numpy()], dtype=torch.float32, device=dev)
    lo = -1 + 1 / side
    grid[..., 0] = torch.minimum(grid[..., 0].clamp_min(lo), ((2 * hw[:, 1] - 1) / side - 1)[:, None, None])
    grid[..., 1] = torch.minimum(grid[..., 1].clamp_min(lo), ((2 * hw[:, 0] - 1) / side - 1)[:, None, None])
    out = torch.nn.functional.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)
