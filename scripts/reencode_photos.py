"""Re-encode a folder of photos small enough to travel to a GPU machine.

Each photo is resized so its short side is SIDE (never enlarged), centre-
cropped to a square and saved as JPEG at QUALITY. This is how the shipped
weights' training data was made from ../shared/data/photos:

    python scripts/reencode_photos.py ../shared/data/photos/train .devdata/train 256 76
    mkdir -p .devdata/val && cp ../shared/data/photos/val/* .devdata/val/   # as they are
"""

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image


def reencode(src: Path, dst: Path, side: int, quality: int) -> None:
    with Image.open(src) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = side / min(w, h)
        if scale < 1:
            im = im.resize((max(side, round(w * scale)), max(side, round(h * scale))), Image.LANCZOS)
        w, h = im.size
        m = min(w, h)
        left, top = (w - m) // 2, (h - m) // 2
        im.crop((left, top, left + m, top + m)).save(dst / (src.stem + ".jpg"), quality=quality)


def main() -> None:
    src, dst, side, quality = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    dst.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda p: reencode(p, dst, side, quality), files))
    print(f"{len(files)} photos written to {dst}")


if __name__ == "__main__":
    main()
