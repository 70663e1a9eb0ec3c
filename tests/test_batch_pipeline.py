"""The overlapped batch (issue 11, point 3): several photos through the
networks at once give each photo's own result; reading, the networks and
writing overlap without changing what a run writes, names or reports; a
cancel leaves complete files only; and outputs are named NAME_color.EXT as
`colorize` names them (issue 12, point 4)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from hsvcolorizer import batch
from hsvcolorizer.batch import BatchOptions, plan_outputs, run_batch, shard_pairs
from hsvcolorizer.imageio import read_image, write_image
from hsvcolorizer.inference import Colorizer, Prepared
from tests.conftest import colour_image

# Working shapes at the default working size (256, photos never enlarged):
# the first three pad to 40x48 (one forward pass), the others do not.
SIZES = {"a.png": (40, 48), "b.png": (39, 47), "c.jpg": (37, 45), "d.png": (52, 30), "e.png": (21, 64)}


@pytest.fixture
def colorizer(tiny_weights) -> Colorizer:
    return Colorizer.load(tiny_weights, "cpu")


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i, (name, size) in enumerate(SIZES.items()):
        write_image(folder / name, colour_image(*size, seed=i))
    return folder


def test_colorize_many_equals_one_at_a_time(colorizer, photos):
    images = [read_image(photos / name) for name in SIZES]
    together = colorizer.colorize_many(images)
    assert len(together) == len(images)
    for image, many in zip(images, together):
        one = colorizer.colorize(image)
        assert many.working_size == one.working_size and many.gray.shape == one.gray.shape
        np.testing.assert_allclose(many.stage1_hs, one.stage1_hs, atol=1e-5)
        np.testing.assert_allclose(many.refined_hs, one.refined_hs, atol=1e-5)
        assert np.abs(many.render().astype(int) - one.render().astype(int)).max() <= 1


def test_colorize_many_runs_one_forward_pass_per_padded_shape(colorizer, photos, monkeypatch):
    batches = []
    real = type(colorizer.model).forward

    def forward(self, x, *args, **kwargs):
        batches.append(tuple(x.shape))
        return real(self, x, *args, **kwargs)

    monkeypatch.setattr(type(colorizer.model), "forward", forward)
    colorizer.colorize_many([read_image(photos / name) for name in SIZES])
    assert sorted(batches) == sorted([(3, 1, 40, 48), (1, 1, 52, 32), (1, 1, 24, 64)])


def _reference(colorizer, src: Path) -> np.ndarray:
    return colorizer.colorize(read_image(src)).render()


@pytest.mark.parametrize("workers, group", [(1, 1), (3, 1), (2, 3), (4, 8)])
def test_batch_writes_what_one_photo_at_a_time_writes(workers, group, colorizer, photos, tmp_path):
    out = tmp_path / f"out{workers}{group}"
    calls = []
    caller = threading.get_ident()

    def progress(i, n, outcome):
        calls.append((i, n, outcome.source.name, threading.get_ident()))

    report = run_batch(colorizer, photos, out, BatchOptions(), progress, workers=workers, group=group)
    names = sorted(SIZES)
    assert [c[:3] for c in calls] == [(i + 1, len(names), name) for i, name in enumerate(names)], "in order"
    assert {c[3] for c in calls} == {caller}, "on the caller's thread"
    assert [o.source.name for o in report.outcomes] == names and report.summary() == "5 done, 0 skipped, 0 failed"
    for name in names:
        written = read_image(out / f"{Path(name).stem}_color.png").pixels
        assert np.abs(written.astype(int) - _reference(colorizer, photos / name).astype(int)).max() <= 1, name
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary file left"


def test_batch_output_names_are_name_color(colorizer, photos, tmp_path):
    pairs = plan_outputs(photos, tmp_path / "out", BatchOptions(format="same"))
    assert [dst.name for _, dst in pairs] == ["a_color.png", "b_color.png", "c_color.jpg", "d_color.png",
                                              "e_color.png"]


def test_two_photos_with_one_name_keep_both_when_grouped(colorizer, photos, tmp_path):
    write_image(photos / "a.jpg", colour_image(40, 48, seed=9))  # a.jpg and a.png both want a_color.png
    out = tmp_path / "out"
    report = run_batch(colorizer, photos, out, BatchOptions(overwrite="replace"), workers=2, group=8)
    by_source = {o.source.name: o.output.name for o in report.outcomes}
    assert by_source["a.jpg"] == "a_color.png" and by_source["a.png"] == "a_color (1).png"
    assert report.count("done") == 6 and len(list(out.iterdir())) == 6


def test_one_failing_photo_of_a_group_is_that_photos_failure(colorizer, photos, tmp_path, monkeypatch):
    """Out of memory in a grouped forward pass: the group is retried one by
    one, so the others are done and the failure is the one photo's."""
    bad = SIZES["b.png"]
    real = type(colorizer.model).forward

    def forward(self, x, *args, **kwargs):
        if x.shape[0] > 1 or x.shape[-2:] == (40, 48) and _is_bad(x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, x, *args, **kwargs)

    def _is_bad(x):  # b is 39x47, padded by reflection: its last row repeats its row 37
        return bool(torch.equal(x[0, 0, bad[0]], x[0, 0, bad[0] - 2]))

    monkeypatch.setattr(type(colorizer.model), "forward", forward)
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    report = run_batch(colorizer, photos, tmp_path / "out", workers=2, group=4)
    status = {o.source.name: (o.status, o.reason) for o in report.outcomes}
    assert status["b.png"] == ("failed", "b.png: out of memory on the device; try a smaller working size")
    assert status["broken.png"][0] == "failed" and "cannot read" in status["broken.png"][1]
    assert {n for n, (s, _) in status.items() if s == "done"} == {"a.png", "c.jpg", "d.png", "e.png"}
    assert [o.source.name for o in report.outcomes] == sorted([*SIZES, "broken.png"])


def test_a_bug_is_not_reported_as_a_photo_failure(colorizer, photos, tmp_path, monkeypatch):
    def broken(self, *args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(Colorizer, "colorize", broken)
    with pytest.raises(TypeError, match="a bug"):
        run_batch(colorizer, photos, tmp_path / "out", workers=2, group=1)


def test_write_failures_are_reported_per_photo(colorizer, photos, tmp_path, monkeypatch):
    real = batch.write_image

    def write_image(path, *args, **kwargs):
        if Path(path).name == "c_color.png":
            raise MemoryError
        return real(path, *args, **kwargs)

    monkeypatch.setattr(batch, "write_image", write_image)
    report = run_batch(colorizer, photos, tmp_path / "out", workers=2)
    status = {o.source.name: (o.status, o.reason) for o in report.outcomes}
    assert status["c.jpg"] == ("failed", "c.jpg: not enough memory")
    assert report.summary() == "4 done, 0 skipped, 1 failed"


def test_cancel_stops_soon_and_leaves_complete_files(colorizer, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    total = 30
    for i in range(total):
        write_image(src / f"p{i:02d}.png", colour_image(24, 24, seed=i))
    cancel = threading.Event()
    seen = []

    def progress(i, n, outcome):
        seen.append(i)
        cancel.set()

    out = tmp_path / "out"
    report = run_batch(colorizer, src, out, BatchOptions(), progress, cancel, workers=2, group=4)
    assert report.cancelled and "(cancelled)" in report.summary()
    assert seen == list(range(1, len(report.outcomes) + 1)), "outcomes are the first photos, in order"
    assert 1 <= report.count("done") < total
    # Only the photos already being written were finished: a few, not the folder.
    assert report.count("done") <= 2 + 4 + 2
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(o.output.name for o in report.outcomes if o.status == "done")
    assert all(read_image(out / name).size == (24, 24) for name in written)


def test_cancel_before_the_start_writes_nothing(colorizer, photos, tmp_path):
    cancel = threading.Event()
    cancel.set()
    report = run_batch(colorizer, photos, tmp_path / "out", cancel=cancel)
    assert report.cancelled and report.outcomes == []
    assert list((tmp_path / "out").iterdir()) == []


def test_skip_policy_reads_nothing_for_existing_outputs(colorizer, photos, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_batch(colorizer, photos, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    def no_reading(*args, **kwargs):
        raise AssertionError("an existing output's photo was read")

    monkeypatch.setattr("hsvcolorizer.pipeline.read_image", no_reading)
    report = run_batch(colorizer, photos, out)
    assert report.summary() == "0 done, 5 skipped, 0 failed"
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_shards_split_the_photos_and_keep_one_name_together(tmp_path):
    out = tmp_path / "out"
    names = ["a.jpg", "a.png", "b.png", "c.png", "d.png", "e.tif"]
    pairs = [(tmp_path / n, out / f"{Path(n).stem}_color.png") for n in names]
    shards = [shard_pairs(pairs, rank, 2) for rank in range(2)]
    assert sorted(p for s in shards for p in s) == sorted(pairs), "every photo once"
    assert [src.name for src, _ in shards[0]] == ["a.jpg", "a.png", "c.png", "e.tif"]
    assert [src.name for src, _ in shards[1]] == ["b.png", "d.png"]
    assert shard_pairs(pairs, 0, 1) == pairs


def test_measure_batch_reports_photos_per_second(colorizer, tmp_path):
    from hsvcolorizer.batch_speed import make_photo_folder, measure_batch

    folder = tmp_path / "big"
    paths = make_photo_folder(folder, count=2, megapixels=0.02)
    assert [read_image(p).pixels.ndim for p in paths] == [2, 2], "gray JPEGs"
    assert read_image(paths[0]).size[0] > read_image(paths[0]).size[1]  # landscape, then portrait
    assert read_image(paths[1]).size[0] < read_image(paths[1]).size[1]
    for fmt in ("jpg", "png"):
        report = measure_batch(colorizer, folder, fmt)
        assert report["photos"] == 2 and report["failed"] == 0 and report["format"] == fmt
        assert report["photos_per_second"] > 0 and abs(report["megapixels"] - 0.02) < 0.005
    assert sorted(p.name for p in folder.iterdir()) == ["photo000.jpg", "photo001.jpg"], "outputs went elsewhere"


def test_the_host_work_before_the_networks_runs_on_the_reading_threads(colorizer, photos, tmp_path, monkeypatch):
    # A 12-megapixel photo's gray and its resize to the working size take
    # about 0.1 s of a core; done where the networks run, they kept a GPU
    # waiting (profile on the H200 machine, issue 11).
    threads = []
    real = Colorizer.prepare

    def prepare(self, image, working_size=None):
        if not isinstance(image, Prepared):  # a prepared photo is passed on as it is
            threads.append(threading.current_thread().name)
        return real(self, image, working_size)

    monkeypatch.setattr(Colorizer, "prepare", prepare)
    report = run_batch(colorizer, photos, tmp_path / "out", BatchOptions(), workers=2, group=2)
    assert report.count("done") == len(SIZES)
    assert len(threads) == len(SIZES) and all(name.startswith("batch-read") for name in threads), threads


def test_a_prepared_photo_gives_the_same_result_as_the_photo(colorizer, photos):
    photo = read_image(photos / "a.png")
    direct = colorizer.colorize(photo)
    prepared = colorizer.colorize(colorizer.prepare(photo))
    assert np.array_equal(direct.refined_hs, prepared.refined_hs)
    assert np.array_equal(direct.render(), prepared.render())
    # prepared for another working size: prepared again, not used as it is
    other = colorizer.colorize(colorizer.prepare(photo, 16), working_size=256)
    assert np.array_equal(other.refined_hs, direct.refined_hs)
    # with no working size given, the one it was prepared for
    small = colorizer.colorize(colorizer.prepare(photo, 16))
    assert small.working_size == colorizer.colorize(photo, working_size=16).working_size != direct.working_size


def test_batch_syncs_each_output_folder_once_not_per_photo(colorizer, photos, tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(batch, "fsync_folder", lambda folder: synced.append(Path(folder)))
    import hsvcolorizer.atomic as atomic

    per_file = []
    monkeypatch.setattr(atomic, "fsync_folder", lambda folder: per_file.append(Path(folder)))
    out = tmp_path / "out"
    report = run_batch(colorizer, photos, out, BatchOptions(), workers=2)
    assert report.count("done") == len(SIZES)
    # each folder once, the output folder and the folder it was made in
    assert sorted(synced) == sorted({out, out.parent}) and per_file == []


def test_the_next_group_is_read_while_a_group_is_colorized(colorizer, photos, tmp_path, monkeypatch):
    # Reading and the networks overlap: while one group goes through the
    # networks (and to the writers), the readers already decode the whole
    # next group. Refilling the read-ahead only between groups left them idle
    # (the GPU batch ran at the readers' pace, issue 11).
    files = sorted(p.name for p in photos.iterdir())  # the batch's order
    next_group_started = threading.Event()
    started: list[str] = []
    real_prepare = Colorizer.prepare

    def prepare(self, image, working_size=None):
        if not isinstance(image, Prepared):
            started.append(Path(image.path).name if image.path else "?")
            if set(files[2:4]) <= set(started):
                next_group_started.set()
        return real_prepare(self, image, working_size)

    seen_while_colorizing: list[bool] = []
    real_many = Colorizer.colorize_many

    def colorize_many(self, images, *args, **kwargs):
        if not seen_while_colorizing:  # the first group: wait for the readers (at most 10 s)
            seen_while_colorizing.append(next_group_started.wait(10))
        return real_many(self, images, *args, **kwargs)

    monkeypatch.setattr(Colorizer, "prepare", prepare)
    monkeypatch.setattr(Colorizer, "colorize_many", colorize_many)
    report = run_batch(colorizer, photos, tmp_path / "out", BatchOptions(), workers=2, group=2)
    assert report.count("done") == len(SIZES)
    assert seen_while_colorizing == [True], f"read before the first group was done: {started}"


def test_default_threads_share_the_cores_with_the_networks_and_other_processes(monkeypatch):
    from hsvcolorizer.pipeline import default_workers

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert default_workers(torch.device("cpu")) == 8  # the networks want the cores too
    assert default_workers(None) == 8
    # torchrun's processes on one machine share its cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert default_workers(torch.device("cpu")) == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert default_workers(torch.device("cpu")) == 2  # still reading, networks and writing overlap
    monkeypatch.setattr("os.cpu_count", lambda: None)
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert default_workers(None) == 2


def test_a_gpu_batch_keeps_its_threads_within_host_memory(monkeypatch):
    from hsvcolorizer import pipeline

    class Props:
        total_memory = 80 * 2**30

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Props())
    monkeypatch.setattr(pipeline, "_host_memory_gib", lambda: 256)
    assert pipeline.default_workers(torch.device("cuda")) == 32
    monkeypatch.setattr(pipeline, "_host_memory_gib", lambda: 8)
    assert pipeline.default_workers(torch.device("cuda")) == 16  # one per 0.5 GiB of host memory
