"""Training curves of one or more runs from their JSON-line events
(`hsvcolorizer train --events jsonl > RUN.jsonl`), as one PNG: training loss
per logged step (both stages) and the validation loss and PSNR at each
epoch's end. Needs matplotlib (not a dependency of the application).

    python scripts/plot_curves.py models/training_curves.png main.jsonl [more.jsonl ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_events(path: Path) -> list[dict]:
    events = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def main() -> None:
    out, runs = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    for path in runs:
        ev = read_events(path)
        name = path.stem
        t0 = next(e["time"] for e in ev if e["event"] == "start")
        for stage, style in ((1, "-"), (2, "--")):
            steps = [e for e in ev if e["event"] == "step" and e["stage"] == stage]
            if steps:
                axes[0].plot([e["global_step"] for e in steps], [e["loss"] for e in steps], style,
                             label=f"{name} stage {stage}", linewidth=1)
            epochs = [e for e in ev if e["event"] == "epoch" and e["stage"] == stage and "val_loss" in e]
            if epochs:
                minutes = [(e["time"] - t0) / 60 for e in epochs]
                axes[1].plot(minutes, [e["val_loss"] for e in epochs], style + "o", markersize=3,
                             label=f"{name} stage {stage}")
                axes[2].plot(minutes, [e["val_psnr"] for e in epochs], style + "o", markersize=3,
                             label=f"{name} stage {stage}")
    axes[0].set(title="training loss (logged every 25 steps)", xlabel="optimizer step", ylabel="loss")
    axes[1].set(title="validation loss at each epoch's end", xlabel="minutes since start", ylabel="loss")
    axes[2].set(title="validation PSNR at each epoch's end", xlabel="minutes since start", ylabel="dB")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(out, dpi=110)
    print(f"written {out}")


if __name__ == "__main__":
    main()
