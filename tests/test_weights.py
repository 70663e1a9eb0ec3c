"""Weights: safetensors with metadata; pickles and mismatches refused with a message."""

import pickle

import pytest
import torch

from hsvcolorizer.errors import ColorizerError
from hsvcolorizer.inference import Colorizer
from hsvcolorizer.networks import TwoStageColorizer
from hsvcolorizer.weights import load_weights, read_metadata, save_weights


def test_round_trip_keeps_tensors_and_metadata(tmp_path, tiny_config):
    m = TwoStageColorizer(tiny_config)
    p = save_weights(m, tmp_path / "w.safetensors", {"input_channel": "v", "training": {"steps": 3}})
    loaded, meta = load_weights(p)
    assert meta["input_channel"] == "v" and meta["training"]["steps"] == 3
    for k, v in m.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    half = save_weights(m, tmp_path / "h.safetensors", {}, half=True)
    assert half.stat().st_size < p.stat().st_size * 0.6
    load_weights(half)


class Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/hsvcolorizer-pwned",))


def test_pickle_is_refused_without_running_it(tmp_path):
    for name in ("evil.pt", "evil.safetensors"):
        p = tmp_path / name
        p.write_bytes(pickle.dumps({"x": Payload()}))
        with pytest.raises(ColorizerError, match="pickle"):
            Colorizer.load(p)
    import os

    assert not os.path.exists("/tmp/hsvcolorizer-pwned")


def test_truncated_and_foreign_files(tmp_path, tiny_weights):
    data = tiny_weights.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ColorizerError, match="cut.safetensors"):
        load_weights(cut)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ColorizerError, match="metadata"):
        read_metadata(foreign)
    with pytest.raises(ColorizerError, match="does not exist"):
        load_weights(tmp_path / "missing.safetensors")


def test_architecture_mismatch_says_what_differs(tmp_path, tiny_config):
    import json

    from safetensors.torch import load_file, save_file

    p = save_weights(TwoStageColorizer(tiny_config), tmp_path / "w.safetensors", {"input_channel": "luma"})
    meta = read_metadata(p)
    meta["architecture"]["rcn_fuse_width"] = 16  # declares another shape than it holds
    tensors = load_file(str(p))
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata={"hsvcolorizer": json.dumps(meta)})
    with pytest.raises(ColorizerError, match="shape"):
        load_weights(bad)


def test_missing_default_weights_is_one_clear_error(monkeypatch):
    import hsvcolorizer.inference as inf

    monkeypatch.setattr(inf, "default_weights", lambda: None)
    with pytest.raises(ColorizerError, match="no model weights found"):
        Colorizer.load(None)


def test_weights_load_whatever_their_header_length(tmp_path, tiny_config):
    """A safetensors file starts with its header's length; its first byte is
    0x80, like a pickle's, for about 1 file in 32. Every residue the length
    can take modulo 256 (it is a multiple of 8) must load."""
    m = TwoStageColorizer(tiny_config)
    residues = set()
    for pad in range(0, 256, 1):
        p = save_weights(m, tmp_path / f"w{pad}.safetensors", {"note": "x" * pad})
        head = p.read_bytes()[:8]
        residue = int.from_bytes(head, "little") % 256
        if residue in residues:
            p.unlink()
            continue
        residues.add(residue)
        load_weights(p)  # raises if refused
        Colorizer.load(p)
    assert residues == set(range(0, 256, 8))
    assert 0x80 in residues


def test_pickle_named_safetensors_with_plausible_header_is_still_refused(tmp_path):
    # A pickle's first 8 bytes read as a little-endian length give a huge
    # number, so it can never pass as a safetensors header.
    p = tmp_path / "evil.safetensors"
    p.write_bytes(pickle.dumps({"x": Payload()}, protocol=4))
    with pytest.raises(ColorizerError, match="pickle"):
        read_metadata(p)
