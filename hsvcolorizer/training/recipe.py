"""What a training run is: its options, split into the recipe (what defines
the model and its training, compared field by field on resume) and the run
options (device, workers, budgets, events); the learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

from hsvcolorizer.choices import INPUT_CHANNELS
from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.networks import DILATED_LRCMGN, ModelConfig

WARMUP_STEPS = 100  # the learning rate rises linearly over each stage's first steps (a tenth of a short stage)


@dataclass
class TrainConfig:
    """Every option of `hsvcolorizer train`; stored in checkpoints and weights."""

    data: str
    out: str
    val: str | None = None
    stage: str = "both"  # "1", "2" or "both"
    epochs_stage1: int = 10
    epochs_stage2: int = 10
    steps_stage1: int | None = None  # optional cap on optimizer steps (a budget)
    steps_stage2: int | None = None
    minutes_stage1: float | None = None  # optional wall-clock budget per stage
    minutes_stage2: float | None = None
    batch_size: int = 16
    size: int = 256
    lr: float = 2e-4
    hue_weight: float = 1.0
    hue_loss: str = "circular"  # "circular" (the paper's) or "l1" (ablation)
    input_channel: str = "luma"  # "luma" (ours) or "v" (the paper's)
    rcn: str = "pyramid"
    circular_resize: bool = True
    width_scale: float = 1.0  # < 1 makes every layer narrower (tests, quick trials)
    device: str = "auto"
    amp: bool | None = None  # None: bf16 autocast where native (CUDA, AMX CPUs: device.native_bf16)
    workers: int | None = None
    seed: int = 0
    checkpoint_every: int = 200  # steps
    checkpoint_minutes: float = 5.0
    log_every: int = 10
    val_max: int = 64
    init: str | None = None  # weights to start from (required for --stage 2 without a stage-1 run)
    resume: bool = False
    events: bool = False
    # The v2 recipe (models/README.md compares each against v1's choice):
    sampling: str = "source"  # "source": every source equally often; "file": every photo equally often (v1)
    crop: str = "resized"  # "resized": random-resized crops; "plain": random squares (v1)
    hue_weighting: str = "saturation"  # hue error weighted by the true saturation; "none" (v1, the paper)
    hue_vector: bool = True  # hue predicted as (cos, sin); False: one tanh value (v1)
    stage1_weight: float = 1.0  # stage 1's own loss kept during stage 2 with this weight; 0 (v1) drops it
    schedule: str = "cosine"  # learning rate: "cosine" decay to 0 over the stage's budget, or "constant" (v1)
    ema: float = 0.999  # decay of the moving average of the weights that is saved; 0 (v1): none
    dilated: bool = False  # LR-CMGN's 1/4-size layers dilated (receptive field 253 px instead of 77)
    hints: bool = False  # LR-CMGN reads a colour-hint map; trained with simulated hints (hints.py)


# The options that define the model and its training (the recipe), as
# opposed to how and where a run goes (device, workers, budgets, events).
RECIPE_FIELDS = ("data", "size", "batch_size", "lr", "hue_weight", "hue_loss", "input_channel", "rcn",
                 "circular_resize", "width_scale", "seed", "sampling", "crop", "hue_weighting", "hue_vector",
                 "stage1_weight", "schedule", "ema", "dilated", "hints")
# What a checkpoint written before these options existed was trained with.
PRE_V2_RECIPE = {"sampling": "file", "crop": "plain", "hue_weighting": "none", "hue_vector": False,
                 "stage1_weight": 0.0, "schedule": "constant", "ema": 0.0, "dilated": False, "hints": False}


def model_config(cfg: TrainConfig) -> ModelConfig:
    base = ModelConfig(rcn=cfg.rcn, circular_resize=cfg.circular_resize, hue_vector=cfg.hue_vector,
                       lrcmgn_dilations=list(DILATED_LRCMGN) if cfg.dilated else [], hint_input=cfg.hints)
    if cfg.width_scale != 1.0:
        sc = lambda w: max(4, int(round(w * cfg.width_scale)))  # noqa: E731
        base.lrcmgn_widths = [sc(w) for w in base.lrcmgn_widths[:-1]] + [2]
        base.rcn_branch_widths = [sc(w) for w in base.rcn_branch_widths]
        base.rcn_fuse_width = sc(base.rcn_fuse_width)
        base.rcn_head_widths = [sc(w) for w in base.rcn_head_widths]
        base.plain_width = sc(base.plain_width)
    return base


def lr_factor(schedule: str, step: int, total_steps: int, time_done: float | None) -> float:
    """The learning rate's share of --lr after `step` of `total_steps` (and
    `time_done`, the spent share of a time budget, whichever is further).

    A short linear warm-up keeps Adam's first, noisy steps small: without it,
    at 3e-4 and batch 64, the tanh outputs of a fresh network were driven to
    +-1 within the first steps and stayed there (models/README.md).
    """
    warm = min(1.0, (step + 1) / max(1, min(WARMUP_STEPS, total_steps // 10)))
    if schedule == "constant":
        return warm
    progress = step / max(total_steps, 1)
    if time_done is not None:
        progress = max(progress, time_done)
    return warm * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def validate_config(cfg: TrainConfig) -> None:
    """Refuse options no run can use, with a message that names the option."""
    if cfg.stage not in ("1", "2", "both"):
        raise ColorizerError(f"--stage must be 1, 2 or both, not {cfg.stage!r}")
    if cfg.size < 16 or cfg.size % 4:
        raise ColorizerError(f"--size must be a multiple of 4 and at least 16, not {cfg.size}")
    if cfg.batch_size < 1:
        raise ColorizerError("--batch-size must be at least 1")
    if cfg.epochs_stage1 < 0 or cfg.epochs_stage2 < 0:
        raise ColorizerError("epochs must not be negative")
    if not (cfg.lr > 0):
        raise ColorizerError("--lr must be positive")
    if cfg.input_channel not in INPUT_CHANNELS:
        raise ColorizerError(f"--input-channel must be {' or '.join(INPUT_CHANNELS)}")
    if cfg.hue_loss not in ("circular", "l1"):
        raise ColorizerError("--hue-loss must be circular or l1")
    for name, value, allowed in (("--sampling", cfg.sampling, ("source", "file")), ("--crop", cfg.crop, ("resized", "plain")),
                                 ("--hue-weighting", cfg.hue_weighting, ("saturation", "none")),
                                 ("--schedule", cfg.schedule, ("cosine", "constant"))):
        if value not in allowed:
            raise ColorizerError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    if not (0 <= cfg.ema < 1):
        raise ColorizerError("--ema must be at least 0 and below 1")
    if cfg.stage1_weight < 0:
        raise ColorizerError("--stage1-weight must not be negative")
    if not Path(cfg.data).is_dir():
        raise ColorizerError(f"data folder {cfg.data} does not exist")
    if cfg.val and not Path(cfg.val).is_dir():
        raise ColorizerError(f"validation folder {cfg.val} does not exist")


def config_fields() -> list[str]:
    return [f.name for f in fields(TrainConfig)]
