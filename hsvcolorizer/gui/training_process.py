"""The trainer as a child process: `hsvcolorizer train --events jsonl`.

Training runs in its own process, not a thread: it can use every core or
the GPU without freezing the window, a crash in it cannot take the window
down, and it can be ended at any moment (its checkpoints are written
atomically, so Resume continues from the last one). The child prints one
JSON event per line (the schema is ``hsvcolorizer.training.runfolder``'s
EVENTS, read with its ``parse_event``); this object turns each into a typed
signal and the end of the process into one ``finished(Outcome)``.

Stopping: ``stop()`` asks the trainer to stop after the step it is in (SIGTERM,
which the trainer turns into "finish the step, checkpoint it, say 'stopped'"),
and waits for it however long that step takes (a CPU step can take a minute).
``stop()`` again, or ``kill()``, ends it at once, losing the steps since the
last checkpoint.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal, Slot

import hsvcolorizer
from hsvcolorizer.training.runfolder import parse_event

__all__ = ["Outcome", "TrainingProcess"]

log = logging.getLogger(__name__)

IDLE, RUNNING, STOPPING = "idle", "running", "stopping"


@dataclass
class Outcome:
    """How a run ended: ``kind`` is "finished" (final weights written),
    "stopped" (by stop/kill/shutdown) or "failed" (``message`` says why)."""

    kind: str
    weights: str | None = None
    message: str = ""
    exit_code: int | None = None
    elapsed_s: float = 0.0
    stopped_event: dict | None = None  # the trainer's own "stopped", when it checkpointed its step
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.kind == "finished"


class TrainingProcess(QObject):
    """One `hsvcolorizer train` child at a time, with typed signals per event."""

    state_changed = Signal(str)  # IDLE, RUNNING or STOPPING
    started_run = Signal(dict)  # "start": the plan (config, steps_per_epoch, parameters, device)
    logged = Signal(str)  # "log": one message of the trainer
    step = Signal(dict)
    epoch = Signal(dict)
    checkpoint = Signal(dict)
    stopped = Signal(dict)  # the trainer stopped itself after checkpointing its step
    done = Signal(dict)  # final weights written
    error = Signal(str)  # the trainer's own error message (also repeated on its stderr)
    output = Signal(str)  # a stdout line that is no event (a library's print)
    stderr_line = Signal(str)
    finished = Signal(object)  # Outcome, once per start()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.process: QProcess | None = None
        self._state = IDLE
        self.events_seen: list[dict] = []  # every event of the current run (tests, diagnostics)
        self._reset()

    def _reset(self) -> None:
        self._stdout_buf = self._stderr_buf = b""
        self._error_message: str | None = None
        self._stderr_tail: list[str] = []
        self._weights: str | None = None
        self._stopped_event: dict | None = None
        self._stop_requested = False
        self._started_at = time.monotonic()

    # ---------------------------------------------------------------- state
    @property
    def state(self) -> str:
        return self._state

    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.state_changed.emit(state)

    # -------------------------------------------------------------- control
    def start(self, args: list[str], working_dir: str | None = None) -> None:
        """Run the Python executable with `args` (["-m", "hsvcolorizer.cli",
        "train", ...]; a frozen build drops the "-m ..." pair, its executable
        dispatches `train` itself)."""
        if self.is_running():
            raise RuntimeError("a training is already running")
        self._reset()
        self.events_seen = []
        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        # Unbuffered so each event arrives as it happens, not in 8 KiB lumps.
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("PYTHONIOENCODING", "utf-8")
        # The package's own folder first, so a source checkout that is not
        # installed runs the same code as this window.
        pkg_root = str(Path(hsvcolorizer.__file__).resolve().parent.parent)
        old = env.value("PYTHONPATH", "")
        env.insert("PYTHONPATH", pkg_root + (os.pathsep + old if old else ""))
        proc.setProcessEnvironment(env)
        if working_dir:
            proc.setWorkingDirectory(working_dir)
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._on_finished)
        proc.errorOccurred.connect(self._on_process_error)
        self.process = proc
        if getattr(sys, "frozen", False) and args[:2] == ["-m", "hsvcolorizer.cli"]:
            proc.start(sys.executable, args[2:])
        else:
            proc.start(sys.executable, args)
        if self.process is proc:  # not already ended by a failure to start
            self._set_state(RUNNING)

    def stop(self) -> None:
        """First call: stop after the current step (which the trainer
        checkpoints). Second call: kill at once. SIGTERM is a no-op for
        console programs on Windows; the second call is the way out there."""
        if not self.is_running():
            return
        if self._stop_requested:
            self.kill()
            return
        self._stop_requested = True
        self._set_state(STOPPING)
        self.process.terminate()

    def kill(self) -> None:
        """End the child now; the steps since its last checkpoint are lost."""
        if not self.is_running():
            return
        self._stop_requested = True
        self._set_state(STOPPING)
        self.process.kill()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Stop and wait (for the window closing); kill after `timeout_ms`.
        True when no child is left."""
        proc = self.process
        if proc is None or proc.state() == QProcess.ProcessState.NotRunning:
            return True
        self._stop_requested = True
        self._set_state(STOPPING)
        proc.terminate()
        if not proc.waitForFinished(max(0, int(timeout_ms))):
            proc.kill()
            proc.waitForFinished(3000)
        return proc.state() == QProcess.ProcessState.NotRunning

    # ---------------------------------------------------------- child output
    @Slot()
    def _read_stdout(self) -> None:
        if self.process is not None:
            self.feed_stdout(bytes(self.process.readAllStandardOutput().data()))

    @Slot()
    def _read_stderr(self) -> None:
        if self.process is not None:
            self.feed_stderr(bytes(self.process.readAllStandardError().data()))

    def feed_stdout(self, data: bytes) -> None:
        """Take a chunk of the child's stdout; whole lines only, since a JSON
        event may arrive split over two reads."""
        self._stdout_buf += data
        *lines, self._stdout_buf = self._stdout_buf.split(b"\n")
        for raw in lines:
            self._handle_stdout_line(raw.decode("utf-8", "replace").rstrip("\r"))

    def feed_stderr(self, data: bytes) -> None:
        self._stderr_buf += data
        *lines, self._stderr_buf = self._stderr_buf.split(b"\n")
        for raw in lines:
            self._handle_stderr_line(raw.decode("utf-8", "replace").rstrip("\r"))

    def _flush(self) -> None:
        """What is left once the child has ended, an unterminated last line included."""
        self._read_stdout()
        self._read_stderr()
        if self._stdout_buf.strip():
            self._handle_stdout_line(self._stdout_buf.decode("utf-8", "replace").rstrip("\r"))
        if self._stderr_buf.strip():
            self._handle_stderr_line(self._stderr_buf.decode("utf-8", "replace").rstrip("\r"))
        self._stdout_buf = self._stderr_buf = b""

    def _handle_stdout_line(self, line: str) -> None:
        if not line.strip():
            return
        event = parse_event(line)
        if event is None:
            self.output.emit(line)  # a stray print of some library, or an event of another version
            return
        self.events_seen.append(event)
        kind = event["event"]
        if kind == "error":
            self._error_message = str(event.get("message") or "unknown error")
            self.error.emit(self._error_message)
        elif kind == "log":
            self.logged.emit(str(event.get("message", "")))
        elif kind == "done":
            self._weights = str(event["weights"])
            self.done.emit(event)
        elif kind == "stopped":
            self._stopped_event = event
            self.stopped.emit(event)
        else:
            getattr(self, {"start": "started_run"}.get(kind, kind)).emit(event)

    def _handle_stderr_line(self, line: str) -> None:
        if not line.strip():
            return
        # The CLI repeats an error event's message on stderr; report it once.
        if self._error_message and line.strip() == f"hsvcolorizer: error: {self._error_message}":
            return
        self._stderr_tail = (self._stderr_tail + [line])[-20:]
        self.stderr_line.emit(line)

    # ------------------------------------------------------------- the end
    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._flush()
        elapsed = time.monotonic() - self._started_at
        if self._stop_requested:
            outcome = Outcome("stopped", exit_code=code, elapsed_s=elapsed, stopped_event=self._stopped_event)
        elif code == 0 and status == QProcess.ExitStatus.NormalExit and self._weights:
            outcome = Outcome("finished", weights=self._weights, exit_code=code, elapsed_s=elapsed)
        else:
            if self._error_message:
                message = self._error_message
            elif status == QProcess.ExitStatus.CrashExit:
                message = "The training process crashed." + _tail(self._stderr_tail)
            else:
                message = f"The training process ended with exit code {code}." + _tail(self._stderr_tail)
            outcome = Outcome("failed", message=message, exit_code=code, elapsed_s=elapsed)
        outcome.stderr_tail = list(self._stderr_tail)
        self._end(outcome)

    @Slot(QProcess.ProcessError)
    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error != QProcess.ProcessError.FailedToStart or self.process is None:
            return  # crashes and exits are reported by finished
        message = f"Could not start {sys.executable}: {self.process.errorString()}"
        self._end(Outcome("failed", message=message))

    def _end(self, outcome: Outcome) -> None:
        if self.process is not None:
            self.process.deleteLater()
        self.process = None
        self._stop_requested = False
        self._set_state(IDLE)
        self.finished.emit(outcome)


def _tail(lines: list[str]) -> str:
    useful = [line for line in lines if line.strip()][-3:]
    return ("\n\n" + "\n".join(useful)) if useful else ""
