"""Staged training of the two networks, as a package of small parts:

- recipe: the options (the recipe versus the run options) and the schedule;
- runfolder: the run folder's files and the JSON-line events (no torch: the
  desktop application reads them);
- feed: batches of crops on the training device;
- checkpoint: the resume state, written atomically, checked on reading;
- distributed: torchrun's process group and the decisions ranks share;
- loop: the Trainer and `train`.

The names below are imported lazily, so that `hsvcolorizer.training.runfolder`
can be read without importing torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "recipe", "RECIPE_FIELDS": "recipe", "PRE_V2_RECIPE": "recipe", "WARMUP_STEPS": "recipe",
    "model_config": "recipe", "lr_factor": "recipe", "validate_config": "recipe", "config_fields": "recipe",
    "CHECKPOINT": "runfolder", "STAGE1_WEIGHTS": "runfolder", "FINAL_WEIGHTS": "runfolder", "PREVIEWS": "runfolder",
    "EVENTS": "runfolder", "Events": "runfolder", "parse_event": "runfolder",
    "BatchSource": "feed", "prepare_batch": "feed",
    "read_checkpoint": "checkpoint", "write_checkpoint": "checkpoint",
    "Trainer": "loop", "train": "loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
