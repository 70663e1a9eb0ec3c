"""Write a weights file again in fp16 (half the size), keeping its training
metadata: what the GPU scripts send back, in pieces, after a run.

    python3 scripts/half_weights.py IN.safetensors OUT.safetensors
"""

from __future__ import annotations

import sys

from hsvcolorizer.weights import load_weights, save_weights


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    model, meta = load_weights(src)
    for key in ("format_version", "architecture"):  # save_weights writes them from the model
        meta.pop(key, None)
    save_weights(model, dst, meta, half=True)


if __name__ == "__main__":
    main()
