"""The README's colour-hint picture: one photo as gray (the original's luma),
the default model's automatic result, its result with the hints of a hint
file (each point drawn as a ring), and the original.

    python scripts/hint_example.py resources/hints_example.jpg PHOTO PHOTO.hints.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from hsvcolorizer.hints import read_hints
from hsvcolorizer.imageio import read_image, write_image
from hsvcolorizer.inference import Colorizer

HEIGHT = 300  # the picture's height
GAP = 6
TITLES = ("gray", "automatic", "with the hints", "original")


def main() -> None:
    out, photo, hint_file = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    colorizer = Colorizer.load()
    rgb = read_image(photo).pixels[..., :3]
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    hints = read_hints(hint_file)
    automatic = colorizer.colorize(gray).render()
    hinted = colorizer.colorize(gray, hints=hints).render()
    scale = HEIGHT / rgb.shape[0]
    width = round(rgb.shape[1] * scale)
    panels = [cv2.resize(x, (width, HEIGHT), interpolation=cv2.INTER_AREA)
              for x in (cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB), automatic, hinted, rgb)]
    for hint in hints:  # a ring in the hint's colour, black and white around it: visible on any colour
        centre = (round((hint.x + 0.5) * scale), round((hint.y + 0.5) * scale))
        cv2.circle(panels[2], centre, 7, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.circle(panels[2], centre, 7, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.circle(panels[2], centre, 5, hint.rgb, -1, cv2.LINE_AA)
    title = np.full((24, width, 3), 255, np.uint8)
    columns = []
    for panel, text in zip(panels, TITLES):
        head = title.copy()
        cv2.putText(head, text, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        columns += [np.concatenate([head, panel], 0), np.full((HEIGHT + 24, GAP, 3), 255, np.uint8)]
    write_image(out, np.concatenate(columns[:-1], 1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
