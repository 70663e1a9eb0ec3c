"""Pack the development photos into tar parts small enough to travel to a
GPU machine, one part per call (each call carries at most 64 MiB with the
working tree, and what an earlier call left stays while the machine is warm).

Training photos are cropped to at most 4:3 (the centre of wider photos: the
training cache keeps no more, see hsvcolorizer.data.CANVAS_ASPECT) and
re-encoded as WebP, which holds the same short-side-192 photos in about two
thirds of the JPEG bytes. Validation photos travel unchanged in the first
part, so they are scored exactly as here.

    python scripts/pack_photos.py ../shared/data/colour .devdata --part-mib 56 --quality 80

writes .devdata/part0.tar, part1.tar, ... and .devdata/parts.txt (one line
per part: name, photos, MiB). scripts/train_v2_gpu.sh unpacks them.
"""

from __future__ import annotations

import argparse
import io
import os
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image
from tqdm import tqdm

ASPECT = 4 / 3


def encode(args: tuple[str, int]) -> tuple[str, bytes]:
    """One training photo -> (name.webp, WebP bytes), cropped to at most 4:3."""
    path, quality = args
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        short, long_max = min(w, h), round(min(w, h) * ASPECT)
        if w > long_max:
            im = im.crop(((w - long_max) // 2, 0, (w - long_max) // 2 + long_max, h))
        elif h > long_max:
            im = im.crop((0, (h - long_max) // 2, w, (h - long_max) // 2 + long_max))
        buf = io.BytesIO()
        im.save(buf, "WEBP", quality=quality, method=4)
    return Path(path).stem + ".webp", buf.getvalue()


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path, help="folder with train/ and val/ (../shared/data/colour)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--part-mib", type=float, default=56.0, help="largest part (default 56 MiB)")
    ap.add_argument("--quality", type=int, default=80, help="WebP quality (default 80)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    train = sorted(p for p in (a.src / "train").iterdir() if p.is_file())
    val = sorted(p for p in (a.src / "val").iterdir() if p.is_file())
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        encoded = list(tqdm(pool.map(encode, [(str(p), a.quality) for p in train], chunksize=64),
                            total=len(train), desc="encoding", unit="photo"))
    limit = a.part_mib * 2**20
    parts: list[list[tuple[str, bytes]]] = [[(f"val/{p.name}", p.read_bytes()) for p in val]]
    sizes = [sum(len(d) + 1024 for _, d in parts[0])]
    for name, data in encoded:
        if sizes[-1] + len(data) + 1024 > limit:
            parts.append([])
            sizes.append(0)
        parts[-1].append((f"train/{name}", data))
        sizes[-1] += len(data) + 1024  # a tar header and padding per member
    lines = []
    for k, members in enumerate(parts):
        path = a.out / f"part{k}.tar"
        tmp = path.with_suffix(".tar.partial")
        with tarfile.open(tmp, "w") as tar:
            for name, data in members:
                add(tar, name, data)
        os.replace(tmp, path)
        lines.append(f"{path.name} {len(members)} {path.stat().st_size / 2**20:.1f}")
        print(lines[-1])
    (a.out / "parts.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
