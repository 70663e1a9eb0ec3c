"""The Train tab's state and logic, without widgets.

``TrainController`` owns the ``TrainingProcess`` and keeps what the tab shows
of a run: the phase ("Stage 1 · epoch 3 / 10 · step 2 / 3"), the progress,
the throughput (a mean over the last 30 s, since single log windows of a
small run swing several-fold), the ETA, the loss curves, the last preview,
the log lines, which run folder the curves belong to and whether Resume
makes sense. Every change is a signal; the view only binds them to widgets,
and tests drive the controller without a window.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Signal, Slot

from hsvcolorizer.gui.settings import AppSettings
from hsvcolorizer.gui.tasks import activity
from hsvcolorizer.gui.training_process import IDLE, RUNNING, STOPPING, Outcome, TrainingProcess
from hsvcolorizer.training.runfolder import CHECKPOINT, count

try:  # moving to common.py (issue 12); batch_tab.py keeps them until then
    from hsvcolorizer.gui.common import format_duration
except ImportError:
    from hsvcolorizer.gui.batch_tab import format_duration

__all__ = ["IDLE", "RUNNING", "STOPPING", "SPEED_WINDOW_S", "Throughput", "TrainController", "TrainOptions",
           "has_checkpoint"]

log = logging.getLogger(__name__)

SPEED_WINDOW_S = 30.0
SPEED_UNKNOWN = "— images/s"
ETA_UNKNOWN = "ETA —"
VALIDATION_UNKNOWN = "Validation —"


@dataclass
class TrainOptions:
    """The form: every option the tab passes to `hsvcolorizer train`.
    0 steps means no limit; -1 workers means the trainer's own choice."""

    data: str = ""
    val: str = ""
    run: str = ""
    stage: str = "both"
    epochs_stage1: int = 10
    epochs_stage2: int = 10
    batch_size: int = 16
    lr: float = 0.0002
    size: int = 256
    input_channel: str = "luma"
    device: str = "auto"
    resume: bool = False
    width_scale: float = 1.0
    steps_stage1: int = 0
    steps_stage2: int = 0
    workers: int = -1
    log_every: int = 10

    @classmethod
    def from_settings(cls, settings: AppSettings) -> "TrainOptions":
        return cls(**{f.name: settings.get(f"train/{f.name}") for f in fields(cls)})

    def save(self, settings: AppSettings) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            settings.set(f"train/{f.name}", value.strip() if isinstance(value, str) else value)

    def command(self) -> list[str]:
        """The child's arguments after the Python executable."""
        args = ["-m", "hsvcolorizer.cli", "train",
                "--data", _abs(self.data),
                "--out", _abs(self.run),
                "--stage", self.stage,
                "--epochs-stage1", str(self.epochs_stage1),
                "--epochs-stage2", str(self.epochs_stage2),
                "--batch-size", str(self.batch_size),
                "--size", str(self.size),
                "--lr", repr(self.lr),
                "--input-channel", self.input_channel,
                "--device", self.device,
                "--log-every", str(self.log_every),
                "--events", "jsonl"]
        if self.val.strip():
            args += ["--val", _abs(self.val)]
        if abs(self.width_scale - 1.0) > 1e-9:
            args += ["--width-scale", repr(self.width_scale)]
        if self.steps_stage1 > 0:
            args += ["--steps-stage1", str(self.steps_stage1)]
        if self.steps_stage2 > 0:
            args += ["--steps-stage2", str(self.steps_stage2)]
        if self.workers >= 0:
            args += ["--workers", str(self.workers)]
        if self.resume:
            args.append("--resume")
        return args


def has_checkpoint(run_folder: str) -> bool:
    """True when `run_folder` holds a checkpoint to resume from."""
    text = run_folder.strip()
    return bool(text) and (Path(text).expanduser() / CHECKPOINT).is_file()


class Throughput:
    """Images per second over the last `window_s` seconds of "step" events.

    Each event reports the speed of its own log window (a few steps); a small
    run's windows swing several-fold, so the figure shown is the mean over
    recent windows, weighted by how long each took (total images / total
    time). When a single window is longer than `window_s` (a slow CPU), the
    last one alone is the mean.
    """

    def __init__(self, window_s: float = SPEED_WINDOW_S, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self.clock = clock
        self._samples: deque[tuple[float, float, float]] = deque()  # (when, steps, seconds)
        self._last_step: int | None = None

    def reset(self) -> None:
        self._samples.clear()
        self._last_step = None

    def add(self, images_per_s: float, global_step: int | None) -> None:
        if images_per_s <= 0:
            return
        steps = 1.0
        if global_step is not None and self._last_step is not None and global_step > self._last_step:
            steps = float(global_step - self._last_step)
        self._last_step = global_step
        now = self.clock()
        # With a fixed batch, a window's images are proportional to its steps.
        self._samples.append((now, steps, steps / images_per_s))
        while len(self._samples) > 1 and self._samples[0][0] < now - self.window_s:
            self._samples.popleft()

    def value(self) -> float | None:
        if not self._samples:
            return None
        return sum(s for _, s, _ in self._samples) / sum(t for _, _, t in self._samples)


class TrainController(QObject):
    """A training run as the Train tab shows it (see the module's docstring)."""

    state_changed = Signal(str)  # IDLE, RUNNING or STOPPING
    phase_changed = Signal(str)
    speed_changed = Signal(str)
    eta_changed = Signal(str)
    validation_changed = Signal(str)
    progress_changed = Signal(int, int)  # value, maximum (maximum 0: running, plan not known yet)
    curves_cleared = Signal()
    curve_point = Signal(int, float, dict)  # stage, x (steps into the stage), losses of a "step" event
    validation_point = Signal(int, float)  # stage, validation loss
    preview_changed = Signal(str, str)  # path of the picture ("" when cleared), caption
    log_cleared = Signal()
    log_added = Signal(str, str, str)  # time stamp, text, kind (info, stderr, checkpoint, done, error)
    resume_offered = Signal(bool)  # tick (True) or untick Resume
    weights_changed = Signal(str)  # final weights of the last finished run ("" none)
    status_message = Signal(str)
    failed = Signal(str, str)  # title, message: worth a dialog
    finished = Signal(bool)  # True when the run wrote its final weights

    def __init__(self, parent: QObject | None = None, clock: Callable[[], float] = time.monotonic):
        super().__init__(parent)
        self.process = TrainingProcess(self)
        self.throughput = Throughput(clock=clock)
        self.phase = "Not running"
        self.speed_text = SPEED_UNKNOWN
        self.eta_text = ETA_UNKNOWN
        self.validation_text = VALIDATION_UNKNOWN
        self.progress = (0, 1)
        self.curves: dict[int, dict[str, list]] = {}
        self.preview_path = ""
        self.preview_caption = ""
        self.log: list[tuple[str, str, str]] = []
        self.curves_run: str | None = None  # the run folder the curves and log belong to
        self.weights_path: str | None = None
        self._steps_per_epoch = 1
        self._total_steps: int | None = None
        self._activity: int | None = None
        self._clear_curves()
        p = self.process
        p.state_changed.connect(self._on_state)
        p.started_run.connect(self._guard(self._on_start))
        p.logged.connect(lambda text: self._log(text, "info"))
        p.output.connect(lambda text: self._log(text, "info"))
        p.stderr_line.connect(lambda text: self._log(text, "stderr"))
        p.error.connect(lambda text: self._log(f"Error: {text}", "error"))
        p.step.connect(self._guard(self._on_step))
        p.epoch.connect(self._guard(self._on_epoch))
        p.checkpoint.connect(self._guard(self._on_checkpoint))
        p.finished.connect(self._on_finished)

    # ---------------------------------------------------------------- state
    @property
    def state(self) -> str:
        return self.process.state

    def is_busy(self) -> bool:
        return self.process.is_running()

    @property
    def events_seen(self) -> list[dict]:
        return self.process.events_seen

    # -------------------------------------------------------------- actions
    def start(self, options: TrainOptions, args: list[str] | None = None) -> bool:
        """Start a run of `options` (`args` replaces its command line, for
        tests); False, with a `failed` signal, when the form is incomplete."""
        if self.is_busy():
            return False
        if not options.data.strip():
            self.failed.emit("No training folder", "Choose a folder of colour photos to train on.")
            return False
        if not options.run.strip():
            self.failed.emit("No run folder", "Choose a folder where the run keeps its checkpoints and weights.")
            return False
        args = options.command() if args is None else args
        run_folder = _abs(options.run)
        if not options.resume or run_folder != self.curves_run:
            # A resumed run continues the same curves; a new run, or a run in
            # another folder, starts clean.
            self._clear_curves()
            self._set_preview("", "")
            self._set("validation_text", VALIDATION_UNKNOWN, self.validation_changed)
            self.log.clear()
            self.log_cleared.emit()
        self.curves_run = run_folder
        self.weights_path = None
        self.weights_changed.emit("")
        self._total_steps = None
        self.throughput.reset()
        self._set_progress(0, 0)
        self._set("phase", "Starting…", self.phase_changed)
        self._set("speed_text", SPEED_UNKNOWN, self.speed_changed)
        self._set("eta_text", ETA_UNKNOWN, self.eta_changed)
        self._log(("Resuming" if options.resume else "Starting") + " training: python " +
                  " ".join(_quote(a) for a in args), "info")
        self._activity = activity().begin("Training: starting")
        self.process.start(args, _existing_ancestor(Path(run_folder)))
        self.status_message.emit("Training started")
        return True

    def stop(self) -> None:
        """First call: stop after the current step, which the trainer
        checkpoints; nothing is lost. Second call ("Stop now"): at once."""
        if not self.is_busy():
            return
        if self.state == STOPPING:
            self._log("Ending the training now; the steps since the last checkpoint are lost", "error")
            self.process.kill()
            return
        self._log("Stopping after the current step, which is checkpointed first. Press Stop now to end it "
                  "at once and lose the steps since the last checkpoint.", "info")
        self._set("phase", "Stopping after this step…", self.phase_changed)
        self._set("eta_text", ETA_UNKNOWN, self.eta_changed)
        self.process.stop()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """End a running training and wait (the window closing); True when no
        child process is left."""
        return self.process.shutdown(timeout_ms)

    # --------------------------------------------------------------- events
    def _guard(self, handler: Callable[[dict], None]) -> Callable[[dict], None]:
        def guarded(event: dict) -> None:
            try:
                handler(event)
            except (KeyError, TypeError, ValueError) as e:
                # A malformed event must not break the reading of the next ones.
                log.warning("bad %s event %r: %s", event.get("event"), event, e)
        return guarded

    @Slot(str)
    def _on_state(self, state: str) -> None:
        if state == STOPPING and self._activity is not None:
            activity().update(self._activity, "Training: stopping after this step")
        self.state_changed.emit(state)

    def _on_start(self, ev: dict) -> None:
        self._steps_per_epoch = max(1, int(ev.get("steps_per_epoch") or 1))
        cfg = ev.get("config") or {}
        stages = {"1": [1], "2": [2], "both": [1, 2]}.get(str(cfg.get("stage", "both")), [1, 2])
        total = 0
        for s in stages:
            n = int(cfg.get(f"epochs_stage{s}", 0)) * self._steps_per_epoch
            cap = cfg.get(f"steps_stage{s}")
            total += min(n, int(cap)) if cap else n
        self._total_steps = total or None
        self._set_progress(0, max(1, total))
        params = ev.get("parameters")
        spe = count(self._steps_per_epoch, "step")
        self._log(f"Model: {params:,} parameters on {ev.get('device', '?')}; {spe} per epoch "
                  f"(batch {ev.get('batch_size', '?')})" if isinstance(params, int) else f"{spe} per epoch", "info")
        if self.state != STOPPING:
            self._set("phase", "Preparing…", self.phase_changed)

    def _on_step(self, ev: dict) -> None:
        stage = int(ev["stage"])
        spe = int(ev.get("steps_per_epoch") or self._steps_per_epoch)
        x = float((int(ev["epoch"]) - 1) * spe + int(ev["step"]))
        losses = {k: float(ev[k]) for k in ("loss", "loss_s", "loss_h") if ev.get(k) is not None}
        curve = self.curves[stage]
        curve["x"].append(x)
        for key, value in losses.items():
            curve[key].append(value)
        self.curve_point.emit(stage, x, losses)
        ips = ev.get("images_per_s")
        if ips is not None:
            self.throughput.add(float(ips), int(ev.get("global_step", 0)) or None)
            mean = self.throughput.value()
            if mean is not None:
                self._set("speed_text", f"{mean:.1f} images/s", self.speed_changed)
        if self._total_steps:
            self._set_progress(min(int(ev.get("global_step", 0)), self._total_steps), self._total_steps)
        if self.state == STOPPING:
            return  # keep "Stopping…" up; the last steps still reach the curves
        epochs = ev.get("epochs", "?")
        self._set("phase", f"Stage {stage} · epoch {ev['epoch']} / {epochs} · step {ev['step']} / {spe}",
                  self.phase_changed)
        self._set("eta_text", f"ETA {format_duration(ev.get('eta_s'))}", self.eta_changed)
        if self._activity is not None:
            activity().update(self._activity, f"Training stage {stage}, epoch {ev['epoch']} of {epochs}")

    def _on_epoch(self, ev: dict) -> None:
        stage = int(ev["stage"])
        if ev.get("val_loss") is not None:
            loss = float(ev["val_loss"])
            self.curves[stage]["val"].append((self.curves[stage]["x"][-1] if self.curves[stage]["x"] else 0.0, loss))
            self.validation_point.emit(stage, loss)
            psnr = ev.get("val_psnr")
            self._set("validation_text", f"Validation loss {loss:.4f}" +
                      (f" · PSNR {float(psnr):.2f} dB" if psnr is not None else ""), self.validation_changed)
        if ev.get("preview"):
            self._set_preview(str(ev["preview"]), f"Validation photo after stage {stage}, epoch {ev['epoch']}")

    def _on_checkpoint(self, ev: dict) -> None:
        self._log(f"Checkpoint saved at step {ev.get('step', '?')}: {ev.get('path', '')}", "checkpoint")

    @Slot(object)
    def _on_finished(self, outcome: Outcome) -> None:
        if self._activity is not None:
            activity().end(self._activity)
            self._activity = None
        elapsed = format_duration(outcome.elapsed_s)
        if outcome.kind == "stopped":
            resumable = has_checkpoint(self.curves_run or "")
            self._log("Training stopped." + (" Resume is ticked: press Start to continue from the last checkpoint."
                                             if resumable else " No checkpoint was written yet."), "info")
            if resumable:
                self.resume_offered.emit(True)
            self._set("phase", "Stopped", self.phase_changed)
            self._set("eta_text", ETA_UNKNOWN, self.eta_changed)
            self.status_message.emit("Training stopped")
        elif outcome.ok:
            self.weights_path = outcome.weights
            self._set("phase", "Finished", self.phase_changed)
            self._set_progress(1, 1)
            self._set("eta_text", f"took {elapsed}", self.eta_changed)
            self._log(f"Training finished in {elapsed}. Press “Use these weights” to colorize with the new model.",
                      "done")
            self.weights_changed.emit(self.weights_path or "")
            self.status_message.emit(f"Training finished in {elapsed}")
        else:
            self._log(f"Training failed: {outcome.message}", "error")
            self._set("phase", "Failed", self.phase_changed)
            self._set("eta_text", ETA_UNKNOWN, self.eta_changed)
            self.status_message.emit("Training failed")
            title = "Training could not start" if outcome.exit_code is None else "Training failed"
            self.failed.emit(title, outcome.message)
        if self.progress[1] == 0:
            self._set_progress(0, 1)
        self.finished.emit(outcome.ok)

    # -------------------------------------------------------------- helpers
    def log_text(self) -> str:
        return "\n".join(f"{stamp}  {text}" for stamp, text, _ in self.log)

    def _log(self, text: str, kind: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.log.append((stamp, text, kind))
        del self.log[:-5000]  # as many as the view keeps
        self.log_added.emit(stamp, text, kind)

    def _clear_curves(self) -> None:
        self.curves = {s: {"x": [], "loss": [], "loss_s": [], "loss_h": [], "val": []} for s in (1, 2)}
        self.curves_cleared.emit()

    def _set_preview(self, path: str, caption: str) -> None:
        self.preview_path, self.preview_caption = path, caption
        self.preview_changed.emit(path, caption)

    def _set_progress(self, value: int, maximum: int) -> None:
        if (value, maximum) != self.progress:
            self.progress = (value, maximum)
            self.progress_changed.emit(value, maximum)

    def _set(self, name: str, value: str, signal) -> None:
        if getattr(self, name) != value:
            setattr(self, name, value)
            signal.emit(value)


def _abs(text: str) -> str:
    return str(Path(text.strip()).expanduser().absolute())


def _existing_ancestor(path: Path) -> str:
    for p in (path, *path.parents):
        if p.is_dir():
            return str(p)
    return str(Path.home())


def _quote(arg: str) -> str:
    return f'"{arg}"' if (" " in arg or not arg) else arg
