"""The resume state of a run: written atomically and owner-only, read back
only after its recipe has been compared with the run's, field by field."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from hsvcolorizer.atomic import atomic_write
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.training.recipe import PRE_V2_RECIPE, RECIPE_FIELDS, TrainConfig


def write_checkpoint(path: Path, payload: dict) -> None:
    """Save `payload` (model, optimizer, EMA, state, config, RNG) to `path` atomically."""
    # Checkpoints are our own: owner-only, like any training state.
    atomic_write(path, lambda f: torch.save(payload, f), mode=0o600)


def read_checkpoint(path: Path, cfg: TrainConfig) -> dict:
    """The checkpoint at `path`, after checking it belongs to this recipe.

    Raises ColorizerError naming every recipe option that differs (with both
    values), or saying the file is damaged. Never runs code from the file.
    """
    try:
        # weights_only: our own checkpoint still must not be able to run code.
        ck = torch.load(path, map_location="cpu", weights_only=True)
        stored = dict(ck["config"])
        _ = ck["model"], ck["state"]["stage"], ck["state"]["epoch"], ck["state"]["step_in_epoch"]
    except Exception as e:  # noqa: BLE001 - any failure means the file is unusable
        raise ColorizerError(f"the checkpoint {path} is damaged ({type(e).__name__}); delete it to start over") from e
    # The recipe decides the model and its training; resuming with another
    # would silently train something else, so name what differs first.
    differ = [f"{k} {stored.get(k, PRE_V2_RECIPE.get(k))!r} there, {getattr(cfg, k)!r} now"
              for k in RECIPE_FIELDS if stored.get(k, PRE_V2_RECIPE.get(k)) != getattr(cfg, k)]
    if differ:
        raise ColorizerError(f"the checkpoint in {Path(path).parent} was made with another recipe "
                             f"({'; '.join(differ)}): resume with the same options, or use another --out")
    return ck


def config_dict(cfg: TrainConfig) -> dict:
    return asdict(cfg)
