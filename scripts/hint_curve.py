"""What colour hints are worth: PSNR and a*b* error on colour photos for
0, 1, 2, 5, 10 and 20 hints drawn from the originals (fixed seed), as JSON
and one PNG plot. Needs matplotlib (not a dependency of the application).

    python scripts/hint_curve.py WEIGHTS PHOTOS OUT_STEM [--limit N] [--counts 0,1,2,5,10,20]
        [--baseline HINT_FREE_WEIGHTS]

writes OUT_STEM.json and OUT_STEM.png. With --baseline the hint-free model
is evaluated on the same photos (0 hints) and drawn as a line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hsvcolorizer.evaluation import evaluate  # noqa: E402
from hsvcolorizer.imageio import iter_image_files  # noqa: E402
from hsvcolorizer.inference import Colorizer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("weights", type=Path)
    ap.add_argument("photos", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--counts", default="0,1,2,5,10,20")
    ap.add_argument("--baseline", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    files = iter_image_files(args.photos, recursive=True)[: args.limit]
    colorizer = Colorizer.load(args.weights, device="auto")
    rows = []
    for n in [int(c) for c in args.counts.split(",")]:
        report = evaluate(colorizer, files, hints=n, hint_seed=args.seed, progress=False)
        m = report["model"]
        rows.append({"hints": n, "psnr": m["psnr"], "ab_error": m["ab_error"],
                     "colorfulness_ratio": m["colorfulness_ratio"], "count": report["count"]})
        print(json.dumps(rows[-1]), flush=True)
    result = {"weights": str(args.weights), "photos": str(args.photos), "seed": args.seed, "rows": rows,
              "gray_baseline": {k: report["gray_baseline"][k] for k in ("psnr", "ab_error")}}
    if args.baseline:
        base = evaluate(Colorizer.load(args.baseline, device="auto"), files, progress=False)["model"]
        result["hint_free"] = {k: base[k] for k in ("psnr", "ab_error", "colorfulness_ratio")}
        print(json.dumps({"hint_free": result["hint_free"]}), flush=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    counts = [r["hints"] for r in rows]
    for ax, key, label in ((axes[0], "psnr", "PSNR dB (higher is better)"),
                           (axes[1], "ab_error", "a*b* error (lower is better)")):
        ax.plot(counts, [r[key] for r in rows], "o-", label="hint model")
        ax.axhline(result["gray_baseline"][key], color="gray", linestyle=":", label="gray photo")
        if "hint_free" in result:
            ax.axhline(result["hint_free"][key], color="tab:orange", linestyle="--", label="hint-free model, no hints")
        ax.set_xlabel("hints per photo")
        ax.set_title(label)
        ax.set_xticks(counts)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{rows[0]['count']} validation photos, hints drawn from the originals (seed {args.seed})")
    fig.savefig(args.out.with_suffix(".png"), dpi=110)


if __name__ == "__main__":
    main()
