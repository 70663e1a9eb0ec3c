"""The README's before/after picture: for each named photo, the gray the
model sees (the photo's luma) beside the default model's result at its
default settings, one photo per row.

    python scripts/before_after.py resources/before_after.png ../shared/data/colour/val/A.jpg ...
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from hsvcolorizer.imageio import read_image, write_image
from hsvcolorizer.inference import Colorizer

HEIGHT = 300  # each row's height in the picture
GAP = 6


def main() -> None:
    out, photos = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    colorizer = Colorizer.load()
    rows = []
    for p in photos:
        rgb = read_image(p).pixels[..., :3]
        luma = cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        result = colorizer.colorize(luma[..., 0]).render()
        w = round(rgb.shape[1] * HEIGHT / rgb.shape[0])
        pair = [cv2.resize(x, (w, HEIGHT), interpolation=cv2.INTER_AREA) for x in (luma, result)]
        rows.append(np.concatenate([pair[0], np.full((HEIGHT, GAP, 3), 255, np.uint8), pair[1]], 1))
    width = max(r.shape[1] for r in rows)
    padded = []
    for r in rows:
        padded.append(np.pad(r, ((0, GAP), (0, width - r.shape[1]), (0, 0)), constant_values=255))
    write_image(out, np.concatenate(padded, 0)[:-GAP])
    print(f"written {out}")


if __name__ == "__main__":
    main()
