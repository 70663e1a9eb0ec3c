"""The run folder and the JSON-line events, without torch: the desktop
application reads both while the trainer (a child process) writes them.

A run folder holds `checkpoint.pt` (resume state), `stage1.safetensors`
(after stage 1), `model.safetensors` (the result) and `previews/` (one PNG
per epoch: gray | stage 1 | refined | original).

Events: `hsvcolorizer train --events jsonl` prints one JSON object per line,
``{"event": NAME, "time": UNIX_SECONDS, ...}``, with the fields of EVENTS.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

CHECKPOINT = "checkpoint.pt"
STAGE1_WEIGHTS = "stage1.safetensors"
FINAL_WEIGHTS = "model.safetensors"
PREVIEWS = "previews"

# The schema, written once: each event's fields (beyond "event" and "time").
# Fields marked with "?" may be missing or null.
EVENTS: dict[str, tuple[str, ...]] = {
    "start": ("config", "parameters", "steps_per_epoch", "batch_size", "world_size", "device",
              "images_used", "excluded_gray", "unreadable"),
    "log": ("message",),
    "step": ("stage", "epoch", "epochs", "step", "steps_per_epoch", "global_step", "loss_s", "loss_h", "loss",
             "lr", "images_per_s", "eta_s?"),
    "epoch": ("stage", "epoch", "epochs", "preview?", "val_loss_s?", "val_loss_h?", "val_loss?", "val_psnr?"),
    "checkpoint": ("path", "stage", "epoch", "step"),
    "stopped": ("stage", "epoch", "step", "global_step"),
    "done": ("weights", "elapsed_s"),
    "error": ("message",),
}


def count(n: int, noun: str, plural: str | None = None) -> str:
    """"1 step", "2 steps": the run's messages count things in words a person reads."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def required_fields(name: str) -> tuple[str, ...]:
    return tuple(f for f in EVENTS.get(name, ()) if not f.endswith("?"))


class Events:
    """Writes events as JSON lines on stdout (when enabled), checked against EVENTS."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, event: str, **data) -> None:
        if not self.enabled:
            return
        missing = [f for f in required_fields(event) if f not in data]
        if event not in EVENTS or missing:  # a programming error: fail loudly in tests
            raise ValueError(f"event {event!r} does not match the schema (missing {missing})")
        sys.stdout.write(json.dumps({"event": event, "time": round(time.time(), 3), **data}) + "\n")
        sys.stdout.flush()


def parse_event(line: str) -> dict | None:
    """One line of the trainer's output -> the event it carries, or None for
    anything else (a progress bar, a warning, a malformed or unknown event)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("event") not in EVENTS:
        return None
    if any(f not in event for f in required_fields(event["event"])):
        return None
    return event


def remove_stale_temp_files(out: Path) -> None:
    """Delete the temporary files a killed run left behind (a checkpoint, weights
    or preview being written when the process died); the real files are intact."""
    for pattern in (".checkpoint.*.tmp", ".*.safetensors.*.tmp", f"{PREVIEWS}/.*.png.*.tmp"):
        for tmp in Path(out).glob(pattern):
            try:
                tmp.unlink()
            except OSError:
                pass  # not ours to fight over; it is hidden and harmless
