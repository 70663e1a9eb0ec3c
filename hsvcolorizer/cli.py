"""The `hsvcolorizer` command: colorize, batch, train, evaluate, prepare, info, bench."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from hsvcolorizer import __version__
from hsvcolorizer.choices import (BATCH_FORMATS, DEVICES, INPUT_CHANNELS, OUTPUT_FORMATS, PRECISIONS, RECOMPOSE_MODES,
                                  SATURATION_MAX, SATURATION_MIN, WORKING_SIZE_MAX, WORKING_SIZE_MIN,
                                  saturation_error, working_size_error)
from hsvcolorizer.errors import ColorizerError

EXIT_USER_ERROR = 2
EXIT_BATCH_FAILURES = 1


class _OneLineParser(argparse.ArgumentParser):
    """Option errors are one line, like every other user error."""

    def error(self, message: str):  # noqa: D102 - argparse override
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


_DEVICE_NAMES = ", ".join(DEVICES[:-1]) + f" or {DEVICES[-1]}"


def _working_size(text: str) -> int:
    v = _positive_int(text)
    if working_size_error(v):
        raise argparse.ArgumentTypeError(f"{v} is out of range; use {WORKING_SIZE_MIN} to {WORKING_SIZE_MAX}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be at least 1")
    return v


def _gain(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if saturation_error(v):
        raise argparse.ArgumentTypeError(f"saturation gain must be between {SATURATION_MIN:g} and {SATURATION_MAX:g}")
    return v


def _add_precision_option(p: argparse.ArgumentParser, also: str = "") -> None:
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="number format of the networks: auto is bf16 where the hardware multiplies it natively "
                        "(CPUs with AMX, where the networks run 2.5-4x faster, and CUDA GPUs since Ampere), with "
                        "nearly the same colours, else fp32" + also + " (default: %(default)s)")


def _add_render_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", type=Path, help="weights file (.safetensors) (default: the model in models/)")
    p.add_argument("--device", default="auto", help=f"{_DEVICE_NAMES} (default: %(default)s)")
    _add_precision_option(p)
    p.add_argument("--recompose", choices=RECOMPOSE_MODES, default=None,
                   help="luma: keep the photo's gray exactly; v: the paper's gray-as-V (default: the model's, luma)")
    p.add_argument("--saturation", type=_gain, default=1.0,
                   help=f"saturation gain, {SATURATION_MIN:g} to {SATURATION_MAX:g} (default: %(default)s)")
    p.add_argument("--working-size", type=_working_size, default=None,
                   help=f"long side the networks see, {WORKING_SIZE_MIN} to {WORKING_SIZE_MAX} px "
                        "(default: the model's, chosen on the validation set)")


def build_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog="hsvcolorizer", description="Colorize black-and-white photos "
                                "with a two-stage pyramidal CNN in HSV space.")
    p.add_argument("--version", action="version", version=f"hsvcolorizer {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_OneLineParser)

    c = sub.add_parser("colorize", help="colorize one or more photos")
    c.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    c.add_argument("-o", "--output", type=Path, help="output file (one image) or folder (default: beside each "
                   "photo as NAME_color.png)")
    c.add_argument("--format", choices=OUTPUT_FORMATS, default=None,
                   help="output format when -o is a folder or not given (default: png); with -o FILE its extension decides")
    c.add_argument("--save-stages", action="store_true", help="also save stage 1 and the H, S maps of both stages")
    c.add_argument("--hints", type=Path, metavar="FILE",
                   help='colour hints for the one IMAGE: {"hints": [{"x": 120, "y": 45, "rgb": [200, 30, 40]}, ...]}, '
                        "x the column and y the row in its pixels; needs a model trained with --hints "
                        "(default: none)")
    _add_render_options(c)

    b = sub.add_parser("batch", help="colorize every photo of a folder")
    b.add_argument("in_dir", type=Path, metavar="IN_DIR")
    b.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    b.add_argument("--recursive", action="store_true",
                   help="also colorize the photos in subfolders, keeping their layout in OUT_DIR")
    b.add_argument("--format", choices=BATCH_FORMATS, default="png",
                   help="output format; same: each photo's own where it can be written, else png "
                        "(default: %(default)s)")
    b.add_argument("--overwrite", choices=("skip", "replace", "rename"), default="skip",
                   help="when an output exists: skip it, replace it, or write NAME_color (1).png "
                        "(default: %(default)s)")
    b.add_argument("--threads", type=_positive_int, default=None,
                   help="threads writing photos beside the networks, half as many reading (default: one per CPU "
                        "core, at least 2; at most 8 with the networks on the CPU, up to 32 on a CUDA GPU as its "
                        "memory allows)")
    b.add_argument("--group", type=_positive_int, default=None,
                   help="photos of one working shape that go through the networks together "
                        "(default: 8 on a GPU, 1 on a CPU)")
    _add_render_options(b)

    t = sub.add_parser("train", help="train the two-stage model")
    t.add_argument("--data", required=True, type=Path, help="folder of photos, Places365 root, or a prepared cache")
    t.add_argument("--val", type=Path, help="validation folder or cache (default: 5%% of --data, fixed)")
    t.add_argument("--out", required=True, type=Path, help="run folder: checkpoints, previews, weights")
    t.add_argument("--stage", choices=("1", "2", "both"), default="both",
                   help="which stage to train (default: %(default)s)")
    t.add_argument("--epochs-stage1", type=int, default=10, help="epochs of stage 1 (default: %(default)s)")
    t.add_argument("--epochs-stage2", type=int, default=10, help="epochs of stage 2 (default: %(default)s)")
    t.add_argument("--steps-stage1", type=_positive_int, help="stop stage 1 after this many steps (a budget; default: no limit)")
    t.add_argument("--steps-stage2", type=_positive_int, help="stop stage 2 after this many steps (default: no limit)")
    t.add_argument("--minutes-stage1", type=float, help="stop stage 1 after this many minutes (default: no limit)")
    t.add_argument("--minutes-stage2", type=float, help="stop stage 2 after this many minutes (default: no limit)")
    t.add_argument("--batch-size", type=_positive_int, default=16, help="photos per step (default: %(default)s)")
    t.add_argument("--size", type=_positive_int, default=256,
                   help="training crop side, a multiple of 4 (default: %(default)s)")
    t.add_argument("--lr", type=float, default=2e-4, help="learning rate (default: %(default)s)")
    t.add_argument("--hue-weight", type=float, default=1.0, help="lambda of the loss (default: %(default)s)")
    t.add_argument("--hue-loss", choices=("circular", "l1"), default="circular",
                   help="hue error: the angle between hues, or their plain difference (default: %(default)s)")
    t.add_argument("--input-channel", choices=INPUT_CHANNELS, default="luma",
                   help="what the networks see: the photo's luma, or HSV's V as the paper (default: %(default)s)")
    t.add_argument("--rcn", choices=("pyramid", "plain"), default="pyramid",
                   help="refinement network: pyramidal, or plain as the paper's ablation (default: %(default)s)")
    t.add_argument("--plain-resize", action="store_true", help="resize H plainly, as the paper (default: as an angle)")
    t.add_argument("--width-scale", type=float, default=1.0, help="narrower layers for quick trials (default: %(default)s)")
    r = t.add_argument_group("recipe (defaults: v2's; models/README.md compares each with v1's choice)")
    r.add_argument("--sampling", choices=("source", "file"), default="source",
                   help="draw every source (subfolder or file-name prefix) equally often, or every photo (v1) "
                        "(default: %(default)s)")
    r.add_argument("--crop", choices=("resized", "plain"), default="resized",
                   help="random-resized crops (area 35-100%%, aspect 3/4-4/3) or plain random squares (v1) "
                        "(default: %(default)s)")
    r.add_argument("--hue-weighting", choices=("saturation", "none"), default="saturation",
                   help="weight each pixel's hue error by its true saturation, or not (v1, the paper) "
                        "(default: %(default)s)")
    r.add_argument("--hue-scalar", dest="hue_vector", action="store_false",
                   help="predict hue as one tanh value (v1) instead of a (cos, sin) vector (default: the vector)")
    r.add_argument("--stage1-weight", type=float, default=1.0,
                   help="weight of stage 1's own loss during stage 2 (0: v1, stage 1 drifts) (default: %(default)s)")
    r.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                   help="learning-rate schedule (default: %(default)s)")
    r.add_argument("--ema", type=float, default=0.999, help="decay of the saved moving average of the weights (0: none) (default: %(default)s)")
    r.add_argument("--dilated", action="store_true", help="dilated 1/4-size layers in LR-CMGN (receptive field 253 px) (default: not dilated)")
    r.add_argument("--hints", action="store_true",
                   help="LR-CMGN also reads colour hints, trained with simulated hints; with --init WEIGHTS of a "
                        "hint-free model it starts from exactly that model's colours (default: no hints)")
    t.add_argument("--device", default="auto", help=f"{_DEVICE_NAMES} (default: %(default)s)")
    t.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="bf16 mixed precision (default: on where the hardware multiplies bf16 natively: "
                        "CUDA GPUs since Ampere, CPUs with AMX; off elsewhere)")
    t.add_argument("--workers", type=int, help="data loading processes (default: the CPU count, at most 4)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    t.add_argument("--checkpoint-every", type=_positive_int, default=200,
                   help="steps between checkpoints (default: %(default)s)")
    t.add_argument("--log-every", type=_positive_int, default=10, help="steps between log lines (default: %(default)s)")
    t.add_argument("--init", type=Path,
                   help="weights to start from; stage 2 alone needs stage-1 weights (default: random initialisation)")
    t.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    t.add_argument("--events", choices=("jsonl",), help="write one JSON event per line on stdout (default: plain text)")

    e = sub.add_parser("evaluate", help="measure colorization quality on colour photos")
    e.add_argument("--data", required=True, type=Path, help="folder of colour photos (searched recursively)")
    _add_render_options(e)
    e.add_argument("--limit", type=_positive_int, help="only the first N photos (default: all)")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.add_argument("--sheet", type=Path,
                   help="write a picture grid (gray, stage 1, result, original) to this file (default: none)")
    e.add_argument("--sheet-count", type=_positive_int, default=12,
                   help="photos on the sheet (default: %(default)s)")
    e.add_argument("--hints", type=int, default=0, metavar="N",
                   help="give the model N colour hints per photo drawn from the original (a model trained "
                        "with --hints) (default: %(default)s)")
    e.add_argument("--hint-seed", type=int, default=0, help="seed of the drawn hints (default: %(default)s)")

    pr = sub.add_parser("prepare", help="write a compact uint8 training cache")
    pr.add_argument("src", type=Path, metavar="SRC")
    pr.add_argument("out", type=Path, metavar="OUT")
    pr.add_argument("--size", type=_positive_int, default=256,
                    help="side of the stored squares, a multiple of 4 (default: %(default)s)")
    pr.add_argument("--split", choices=("train", "val"), default="train",
                    help="which Places365 list to read (default: %(default)s)")

    i = sub.add_parser("info", help="show the model's architecture and parameter counts")
    i.add_argument("--weights", type=Path, help="weights file to describe (default: the model in models/)")
    i.add_argument("--json", action="store_true", help="print JSON instead of text")

    be = sub.add_parser("bench", help="measure speed and memory on this machine")
    be.add_argument("--device", default="auto", help=f"{_DEVICE_NAMES} (default: %(default)s)")
    _add_precision_option(be, "; also the precision of the training timing")
    be.add_argument("--weights", type=Path,
                    help="weights file (default: the model in models/; only its shape matters for speed)")
    be.add_argument("--big-megapixels", type=float, default=24.0,
                    help="size of the large photo timed, in megapixels (default: %(default)s)")
    be.add_argument("--train-batch", type=_positive_int, default=4,
                    help="batch size of the training-step timing (default: %(default)s)")
    be.add_argument("--repeats", type=_positive_int, default=3, help="timed runs of each measure (default: %(default)s)")
    be.add_argument("--batch-photos", type=int, default=8,
                    help="12-megapixel JPEGs in the timed batch, written as JPEG and as PNG; 0 skips it "
                         "(default: %(default)s)")
    be.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    restore_sigterm = _interrupt_on_sigterm()
    try:
        return COMMANDS[args.command](args)
    except ColorizerError as e:
        print(f"hsvcolorizer: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as e:
        # A file-system failure not caught nearer its cause (an unwritable or
        # full --out folder while training...): still one line, no traceback.
        print(f"hsvcolorizer: error: {_os_error_text(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except MemoryError:
        print("hsvcolorizer: error: not enough memory", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("hsvcolorizer: interrupted", file=sys.stderr)
        return 130
    finally:
        restore_sigterm()


def _interrupt_on_sigterm():
    """Make SIGTERM (the desktop application's Stop and close, `kill`, service
    managers) unwind like Ctrl+C instead of ending the process on the spot:
    a photo or checkpoint being written loses only its temporary file, and
    data-loading worker processes are stopped rather than orphaned.
    Returns a function that puts the previous handler back."""
    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except (ValueError, OSError, AttributeError):  # not the main thread; no SIGTERM here
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _os_error_text(e: OSError) -> str:
    """'PATH: No space left on device' from an OSError, on one line."""
    reason = e.strerror or " ".join(str(e).split()) or type(e).__name__
    return f"{e.filename}: {reason}" if e.filename else reason


# ---------------------------------------------------------------------------


def _check_weights_arg(weights: Path | None) -> None:
    """Refuse a --weights that names nothing before torch is imported (seconds);
    what is inside the file is checked when it is loaded."""
    if weights is None:
        return
    if not weights.exists():
        raise ColorizerError(f"weights file {weights} does not exist")
    if weights.is_dir():
        raise ColorizerError(f"--weights {weights} is not a weights file: it is a folder")


def _load(args):
    from hsvcolorizer.inference import Colorizer

    return Colorizer.load(args.weights, args.device, args.precision)


def cmd_colorize(args) -> int:
    from hsvcolorizer.imageio import WRITE_FORMATS, format_extensions, read_image, write_image

    # Argument errors first, before anything slow (reading, importing torch).
    _check_weights_arg(args.weights)
    ext = WRITE_FORMATS[args.format or "png"]
    if args.format and args.output is not None and args.output.suffix \
            and args.output.suffix.lower() not in format_extensions(args.format):
        raise ColorizerError(f"-o {args.output.name} and --format {args.format} disagree; give only one of them")
    single = len(args.images) == 1
    if args.hints is not None and not single:
        raise ColorizerError("--hints belongs to one photo; give one IMAGE (batch reads NAME.hints.json beside each)")
    hints = None
    if args.hints is not None:
        from hsvcolorizer.hints import read_hints

        hints = read_hints(args.hints)
    # One photo: read it before anything else, so a bad file fails at once
    # and nothing (not even an output folder) is made.
    first = read_image(args.images[0]) if single else None
    if hints:
        from hsvcolorizer.hints import check_inside

        check_inside(hints, first.pixels.shape[1], first.pixels.shape[0], args.hints.name)
    dsts = _colorize_outputs(args.images, args.output, ext)
    colorizer = _load(args)
    if hints and not colorizer.reads_hints:
        raise ColorizerError(f"{_model_name(args)} does not read colour hints; use a model trained with --hints")
    failed = 0
    for src, dst in zip(args.images, dsts):
        try:
            # Several photos are read one at a time (memory stays that of one),
            # and a bad one is reported and skipped, as batch does.
            photo = first if single else read_image(src)
            if hints is None:
                _note_hint_file_not_given(src)
            if photo.is_color:
                print(f"note: {Path(src).name} is a colour photo; its colours are replaced (the networks see its "
                      "gray)", file=sys.stderr)
            result = colorizer.colorize(photo, working_size=args.working_size, hints=hints)
            write_image(dst, result.render("refined", args.recompose, args.saturation), alpha=result.alpha,
                        exif=photo.exif, icc_profile=photo.icc_profile)
            print(f"{src} -> {dst} ({result.size[0]}x{result.size[1]}, {result.seconds:.2f} s on {result.device}, {result.precision})")
            if args.save_stages:
                _save_stages(src, dst, ext, result, args)
        except RuntimeError as e:
            # torch's errors (out of memory on the device is one) are this
            # photo's failure, in one line, as in batch.
            from hsvcolorizer.batch import runtime_error_reason

            if single:
                raise ColorizerError(f"{Path(src).name}: {runtime_error_reason(e)}") from e
            failed += 1
            print(f"hsvcolorizer: error: {Path(src).name}: {runtime_error_reason(e)}", file=sys.stderr)
        except (ColorizerError, OSError) as e:
            if single:
                raise
            failed += 1
            print(f"hsvcolorizer: error: {e if isinstance(e, ColorizerError) else _os_error_text(e)}", file=sys.stderr)
            continue
    if failed:
        print(f"{len(args.images) - failed} colorized, {failed} failed")
        # As batch: 1 when some photos failed and others were written, 2
        # when nothing was (a script can tell the two apart).
        return EXIT_BATCH_FAILURES if failed < len(args.images) else EXIT_USER_ERROR
    return 0


def _save_stages(src: Path, dst: Path, ext: str, result, args) -> None:
    """Write stage 1's render and both stages' H and S maps beside ``dst``.

    A failure here (a folder or a read-only file where a map goes, a full
    disk) happens after the result itself was written, so its message says
    so: the user keeps the result and learns which extra file is missing.
    """
    from hsvcolorizer.imageio import write_image

    base = dst.with_suffix("")
    try:
        write_image(Path(f"{base}_stage1{ext}"), result.render("stage1", args.recompose, args.saturation),
                    alpha=result.alpha)
        # Named as the window's Save Stages names them: stage1_*, stage2_*.
        for stage, label in (("stage1", "stage1"), ("refined", "stage2")):
            write_image(Path(f"{base}_{label}_hue.png"), result.hue_image(stage))
            write_image(Path(f"{base}_{label}_saturation.png"), result.saturation_image(stage))
    except (ColorizerError, OSError) as e:
        reason = str(e) if isinstance(e, ColorizerError) else _os_error_text(e)
        raise ColorizerError(f"{src} was colorized ({dst}) but its stages were not saved: {reason}") from None
    print(f"  stages saved as {base.name}_stage1*, {base.name}_stage2_*")


def _colorize_outputs(images: list[Path], output: Path | None, ext: str) -> list[Path]:
    """Each photo's output path, checked before anything is written: no output
    may replace an input photo or another photo's output."""
    many = len(images) > 1
    from hsvcolorizer.imageio import existing_non_folder_ancestor, output_file_problem

    # An existing folder is a folder whatever its name ("scans.2024");
    # otherwise a name with an extension is a file.
    as_file = output is not None and bool(output.suffix) and not output.is_dir()
    if as_file and many:
        raise ColorizerError("with several photos, -o must be a folder")
    if as_file:
        problem = output_file_problem(output)
        if problem:
            raise ColorizerError(f"-o: {problem}")
    if output is not None and not as_file:
        blocker = existing_non_folder_ancestor(output)
        if blocker is not None and blocker != output:
            raise ColorizerError(f"-o {output}: {blocker} is a file, not a folder")
        try:
            output.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise ColorizerError(f"-o {output} is a file, not a folder") from None
        except OSError as e:
            raise ColorizerError(f"cannot create the output folder {output}: {e.strerror or e}") from None
    inputs = {p.resolve(): p for p in images}
    claimed: dict[Path, Path] = {}
    dsts = []
    for src in images:
        if output is None:
            dst = src.with_name(f"{src.stem}_color{ext}")
        elif as_file:
            dst = output
        else:
            dst = output / f"{src.stem}_color{ext}"
        real = dst.resolve()
        if real in inputs:
            raise ColorizerError(f"{dst} is an input photo ({inputs[real]}); choose another output name")
        if real in claimed:
            raise ColorizerError(f"{claimed[real]} and {src} would both be written to {dst}; colorize them separately")
        if not dst.parent.is_dir():
            raise ColorizerError(f"output folder {dst.parent} does not exist")
        claimed[real] = src
        dsts.append(dst)
    return dsts


def cmd_batch(args) -> int:
    """Colorize a folder; under torchrun each process takes its share of the
    photos (one GPU each: cuda:LOCAL_RANK) and rank 0 prints one report."""
    from hsvcolorizer.batch_ranks import launched_world

    rank, world = launched_world()
    try:
        # Argument errors first, before anything slow (importing torch).
        _check_weights_arg(args.weights)
        if args.in_dir.is_file():
            raise ColorizerError(f"{args.in_dir} is a file, not a folder; to colorize one photo use: "
                                 f"hsvcolorizer colorize {args.in_dir}")

        from hsvcolorizer.batch import BatchOptions, photos_left_in_subfolders, plan_outputs

        opts = BatchOptions(recursive=args.recursive, format=args.format, overwrite=args.overwrite,
                            mode=args.recompose, saturation=args.saturation, working_size=args.working_size)
        pairs = plan_outputs(args.in_dir, args.out_dir, opts)
        if not pairs:
            raise ColorizerError(f"no photos found in {args.in_dir}" + ("" if args.recursive else " (try --recursive)"))
    except ColorizerError:
        # Every process finds the same fault in the same arguments: one says it.
        if rank != 0:
            return EXIT_USER_ERROR
        raise
    if world > 1:
        return _batch_ranks(args, opts, [src for src, _ in pairs])
    colorizer = _load(args)
    _note_unused_hints(colorizer, pairs)
    report = _run_batch_with_bar(colorizer, args, opts, len(pairs), None)
    _print_batch_report(report, photos_left_in_subfolders(args.in_dir, args.out_dir, opts),
                        f" (networks on {colorizer.device_name} in {colorizer.precision})")
    return EXIT_BATCH_FAILURES if report.failed else 0


def _model_name(args) -> str:
    return args.weights.name if args.weights else "the default model"


def _note_hint_file_not_given(photo_path) -> None:
    """`colorize` uses hints only from --hints; a NAME.hints.json beside the
    photo (the window saves one) is named, so that nobody wonders where
    their hints went."""
    from hsvcolorizer.hints import hints_path_for

    path = hints_path_for(Path(photo_path))
    if path.is_file():
        print(f"note: {path.name} beside {Path(photo_path).name} is not used; pass --hints {path} to use its "
              "hints (batch uses such files by itself)", file=sys.stderr)


def _note_unused_hints(colorizer, pairs) -> None:
    """Say once that hint files beside the photos are not used by this model."""
    from hsvcolorizer.batch import hint_files_in

    if not colorizer.reads_hints and (n := hint_files_in(pairs)):
        print(f"note: {n} photo{'s have hint files' if n != 1 else ' has a hint file'} (NAME.hints.json) beside "
              f"{'them' if n != 1 else 'it'}; this model does not read colour hints, so they are not used",
              file=sys.stderr)


def _batch_ranks(args, opts, order: list[Path]) -> int:
    """cmd_batch's work as one of several processes started by torchrun."""
    from hsvcolorizer.batch import photos_left_in_subfolders, plan_outputs
    from hsvcolorizer.batch_ranks import gather_report, join, leave
    from hsvcolorizer.inference import Colorizer

    rank, world, device = join(args.device)
    try:
        try:
            colorizer = Colorizer.load(args.weights, str(device), args.precision)
            if rank == 0:
                _note_unused_hints(colorizer, plan_outputs(args.in_dir, args.out_dir, opts))
            report = _run_batch_with_bar(colorizer, args, opts, None, (rank, world))
        except ColorizerError as e:
            # Only this process may have met it (its device, its photos' folder).
            raise ColorizerError(f"process {rank} of {world}: {e}") from None
        report = gather_report(report, order, world)
    finally:
        leave()
    if rank == 0:
        _print_batch_report(report, photos_left_in_subfolders(args.in_dir, args.out_dir, opts),
                            f" ({world} processes, networks in {colorizer.precision})")
    return EXIT_BATCH_FAILURES if report.failed else 0


def _run_batch_with_bar(colorizer, args, opts, total: int | None, shard):
    """run_batch with a progress bar on stderr (only rank 0's, under torchrun)."""
    from tqdm import tqdm

    from hsvcolorizer.batch import run_batch

    with tqdm(total=total, unit="photo", file=sys.stderr, dynamic_ncols=True,
              disable=shard is not None and shard[0] != 0) as bar:
        def progress(i, n, outcome):
            bar.total = n
            bar.update(1)
            bar.set_postfix_str(f"{outcome.status}: {outcome.source.name}")

        return run_batch(colorizer, args.in_dir, args.out_dir, opts, progress, workers=args.threads,
                         group=args.group, shard=shard)


def _print_batch_report(report, left: int, where: str = "") -> None:
    print(report.summary() + where)
    if left:
        print(f"{left} photo{'s' if left != 1 else ''} in subfolders {'were' if left != 1 else 'was'} not looked at; "
              "--recursive includes them")
    for o in report.outcomes:
        if o.status == "skipped":
            print(f"  skipped {o.source}: {o.reason}")
    for o in report.failed:
        print(f"  failed  {o.source}: {o.reason}")


def cmd_train(args) -> int:
    from hsvcolorizer.training import TrainConfig, train

    cfg = TrainConfig(
        data=str(args.data), val=str(args.val) if args.val else None, out=str(args.out), stage=args.stage,
        epochs_stage1=args.epochs_stage1, epochs_stage2=args.epochs_stage2, steps_stage1=args.steps_stage1,
        steps_stage2=args.steps_stage2, minutes_stage1=args.minutes_stage1, minutes_stage2=args.minutes_stage2,
        batch_size=args.batch_size, size=args.size, lr=args.lr, hue_weight=args.hue_weight, hue_loss=args.hue_loss,
        input_channel=args.input_channel, rcn=args.rcn, circular_resize=not args.plain_resize,
        width_scale=args.width_scale, device=args.device, amp=args.amp, workers=args.workers, seed=args.seed,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every, init=str(args.init) if args.init else None,
        resume=args.resume, events=args.events == "jsonl", sampling=args.sampling, crop=args.crop,
        hue_weighting=args.hue_weighting, hue_vector=args.hue_vector, stage1_weight=args.stage1_weight,
        schedule=args.schedule, ema=args.ema, dilated=args.dilated, hints=args.hints,
    )
    try:
        train(cfg)
    except (ColorizerError, OSError) as e:
        if cfg.events:  # the desktop application reads the reason from the events
            message = str(e) if isinstance(e, ColorizerError) else _os_error_text(e)
            print(json.dumps({"event": "error", "message": message}), flush=True)
        raise
    return 0


def cmd_evaluate(args) -> int:
    from hsvcolorizer.imageio import iter_image_files, output_file_problem

    # Argument errors first, before anything slow (importing torch).
    _check_weights_arg(args.weights)
    if args.sheet is not None and (problem := output_file_problem(args.sheet)):
        raise ColorizerError(f"--sheet: {problem}")

    files = iter_image_files(args.data, recursive=True)
    if args.limit:
        files = files[: args.limit]
    if not files:
        raise ColorizerError(f"no photos found in {args.data}")
    from hsvcolorizer.evaluation import evaluate, format_table

    if args.hints < 0:
        raise ColorizerError("--hints must be 0 or more")
    colorizer = _load(args)
    report = evaluate(colorizer, files, working_size=args.working_size, mode=args.recompose,
                      saturation=args.saturation, sheet=args.sheet, sheet_count=args.sheet_count,
                      progress=not args.json, hints=args.hints, hint_seed=args.hint_seed)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_table(report))
        if args.sheet:
            print(f"sheet written to {args.sheet}")
    return 0


def cmd_prepare(args) -> int:
    from tqdm import tqdm

    from hsvcolorizer.data import prepare_cache

    if args.size % 4:
        raise ColorizerError("--size must be a multiple of 4")

    def progress(it, total):
        return tqdm(it, total=total, unit="photo", file=sys.stderr, dynamic_ncols=True)

    meta = prepare_cache(args.src, args.out, args.size, args.split, progress)
    print(f"cache written to {args.out}: {meta['count']} colour photos at {meta['size']} px; "
          f"excluded {meta['excluded_gray']} grayscale and {meta['unreadable']} unreadable")
    return 0


def cmd_info(args) -> int:
    from hsvcolorizer.inference import DEFAULT_WORKING_SIZE
    from hsvcolorizer.networks import ModelConfig, TwoStageColorizer, count_parameters
    from hsvcolorizer.weights import default_weights, read_metadata

    info: dict = {}
    path = args.weights or default_weights()
    meta = read_metadata(path) if path else None
    rows = []
    for rcn in ("pyramid", "plain"):
        cfg = ModelConfig.from_dict({**(meta["architecture"] if meta else {}), "rcn": rcn})
        m = TwoStageColorizer(cfg)
        rows.append((rcn, count_parameters(m), count_parameters(m.lrcmgn), count_parameters(m.rcn)))
    info["parameters"] = {r[0]: {"total": r[1], "lrcmgn": r[2], "rcn": r[3]} for r in rows}
    info["weights"] = str(path) if path else None
    info["metadata"] = meta
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"hsvcolorizer {__version__}")
    print("parameters (exact):")
    for rcn, total, lr, rc in rows:
        print(f"  LR-CMGN + {rcn:7s} RCN: {total:>11,d}   (LR-CMGN {lr:,d}; {rcn} RCN {rc:,d})")
    if meta is None:
        print("weights: none found in models/ (pass --weights FILE, or train a model with hsvcolorizer train)")
    else:
        arch = meta["architecture"]
        tr = meta.get("training", {})
        print(f"weights: {path}")
        print(f"  refinement network: {arch.get('rcn')}, hue resize: {'circular' if arch.get('circular_resize', True) else 'plain'}, "
              f"hue output: {'unit vector (cos, sin)' if arch.get('hue_vector') else 'one tanh value'}"
              + (", dilated LR-CMGN" if any(d != 1 for d in arch.get('lrcmgn_dilations') or []) else ""))
        print("  colour hints: " + ("read (--hints FILE, NAME.hints.json in a batch, the window's hint tool)"
                                    if arch.get("hint_input") else "not read (a model trained with --hints reads them)"))
        print(f"  input channel: {meta.get('input_channel')}, recomposition: {meta.get('recompose')}, "
              f"working size: {meta.get('working_size', DEFAULT_WORKING_SIZE)} px (long side)")
        if tr:
            print(f"  trained on {tr.get('images_used')} photos of {tr.get('data')} ({tr.get('excluded_gray')} grayscale "
                  f"excluded), {tr.get('steps')} steps at {tr.get('size')} px on {tr.get('device')}"
                  + (f" in {tr['precision']}" if tr.get("precision") else "")
                  + (f", starting from {tr['init']}" if tr.get("init") else ""))
        if meta.get("validation"):
            side = tr.get("size", 256)
            print(f"  validation during training ({side}x{side} centre crops of its validation photos, not "
                  "`hsvcolorizer evaluate`): " + ", ".join(f"{k} {v}" for k, v in meta["validation"].items()))
    return 0


def cmd_bench(args) -> int:
    from hsvcolorizer.bench import run_bench

    report = run_bench(args.device, args.weights, args.big_megapixels, args.train_batch, args.repeats,
                       log=None if args.json else print, batch_photos=max(0, args.batch_photos),
                       precision=args.precision)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    big, net = report["big_photo"], report["inference"][256]
    print(f"summary ({report['device']}): a {big['width'] * big['height'] / 1e6:.0f}-megapixel photo, gray to colour "
          f"at working size {big['working_size']}: {big['seconds_total']:.2f} s = {big['total_vs_opencv']:g}x "
          f"OpenCV's BGR-HSV-BGR round trip of it ({big['seconds_opencv_round_trip']:.3f} s), the networks "
          f"{big['networks_share']:.0%} of it; re-render with a new saturation {big['seconds_rerender']:.2f} s = "
          f"{big['rerender_vs_opencv']:g}x; networks at 256x256 {net['gflops_per_s']:g} GFLOP/s = "
          f"{net['percent_of_reference']:g}% of one large convolution ({report['reference_conv_gflops_per_s']:g})"
          + (f"; batch of 12-megapixel JPEGs {report['batch']['jpg']['photos_per_s']:g} photos/s as JPEG, "
             f"{report['batch']['png']['photos_per_s']:g} as PNG" if "batch" in report else ""))
    return 0


COMMANDS = {
    "colorize": cmd_colorize,
    "batch": cmd_batch,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "prepare": cmd_prepare,
    "info": cmd_info,
    "bench": cmd_bench,
}


if __name__ == "__main__":
    sys.exit(main())
