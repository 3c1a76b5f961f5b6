# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of reading/writing weights: safetensors, hashes, corrupt and hostile files."""

import hashlib
import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from astro_clustercls.models import (
    build_network,
    check_state_dict,
    file_sha256,
    load_state_dict_file,
    read_weights_meta,
    save_weights,
)

META = {"architecture": "resnet18", "bands": ["F336W", "F555W", "F814W"],
        "cutout_size": 31, "normalization": "asinh-v1"}


@pytest.fixture(scope="module")
def resnet3():
    torch.manual_seed(0)
    model = build_network("resnet18", n_bands=3).eval()
    # give the BN buffers non-trivial values, as after training
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="module")
def saved(resnet3, tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "resnet.safetensors"
    meta = dict(META, sha256="dropped", metrics={"acc": np.float32(0.5)},
                cutout_size=np.int64(31))
    digest = save_weights(resnet3, path, meta=meta)
    return path, digest


def test_round_trip_fp16(resnet3, saved):
    path, digest = saved
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest() == file_sha256(path)
    n_params = sum(p.numel() for p in resnet3.parameters())
    assert path.stat().st_size == pytest.approx(2 * n_params, rel=0.01)  # fp16
    state = load_state_dict_file(path, sha256=digest)
    ref = resnet3.state_dict()
    assert set(state) == set(ref)
    for key, value in ref.items():
        if value.is_floating_point():
            assert state[key].dtype == torch.float32
            # exactly the fp16 rounding of the original
            assert torch.equal(state[key], value.half().float()), key
        else:
            assert torch.equal(state[key], value), key
    other = build_network("resnet18", n_bands=3).eval()
    other.load_state_dict(state)
    x = torch.randn(2, 3, 15, 15, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        got, expected = other(x), resnet3(x)
    torch.testing.assert_close(got, expected, rtol=2e-2, atol=2e-2)
    assert not torch.equal(got, expected)  # fp16 did round something


def test_round_trip_fp32_exact(resnet3, tmp_path):
    path = tmp_path / "w32.safetensors"
    save_weights(resnet3, path, META, fp16=False)  # meta given positionally
    state = load_state_dict_file(path)
    assert all(torch.equal(state[k], v) for k, v in resnet3.state_dict().items())


def test_meta_in_header(saved):
    path, _ = saved
    meta = read_weights_meta(path)
    assert meta == dict(META, metrics={"acc": 0.5})  # sha256 dropped, numpy -> JSON
    # stored as one JSON string in the standard safetensors header
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    header = json.loads(path.read_bytes()[8:8 + n])
    assert json.loads(header["__metadata__"]["astro_clustercls_meta"]) == meta


def test_save_leaves_no_temporary_files(resnet3, tmp_path):
    save_weights(resnet3, tmp_path / "a.safetensors", {})
    with pytest.raises(TypeError, match="not JSON serialisable"):
        save_weights(resnet3, tmp_path / "b.safetensors", {"x": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors"]


def test_hash_mismatch(saved, tmp_path):
    path, digest = saved
    assert load_state_dict_file(path, sha256=digest[:8])  # a prefix is enough
    wrong = "0" * 64
    with pytest.raises(OSError, match=f"expected {wrong}, got {digest}.*corrupt or "
                                      "has been modified"):
        load_state_dict_file(path, sha256=wrong)
    # one flipped byte in the tensor data
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    modified = tmp_path / "modified.safetensors"
    modified.write_bytes(bytes(data))
    with pytest.raises(OSError, match="SHA-256 mismatch"):
        load_state_dict_file(modified, sha256=digest)
    with pytest.raises(ValueError, match="'sha256'"):
        load_state_dict_file(path, sha256="xyz")


@pytest.mark.parametrize("keep", [0, 5, 12, 200, 0.5])
def test_truncated_safetensors(saved, tmp_path, keep):
    path, _ = saved
    data = path.read_bytes()
    n = int(keep * len(data)) if isinstance(keep, float) else keep
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(data[:n])
    with pytest.raises(OSError, match="truncated.safetensors"):
        load_state_dict_file(bad)


def test_truncated_torch_file(resnet3, tmp_path):
    good = tmp_path / "good.pt"
    torch.save(resnet3.state_dict(), good)
    assert set(load_state_dict_file(good)) == set(resnet3.state_dict())
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(OSError, match="bad.pt is truncated or corrupt"):
        load_state_dict_file(bad)


def test_garbage_and_missing_files(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"hello, not weights at all")
    with pytest.raises(OSError, match="junk.safetensors"):
        load_state_dict_file(junk)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_state_dict_file(tmp_path / "nope.pt")
    with pytest.raises(TypeError):
        load_state_dict_file(12)


def test_torch_checkpoint_forms(resnet3, tmp_path):
    sd = resnet3.state_dict()
    torch.save({"state_dict": sd, "epoch": 3, "best": 0.7}, tmp_path / "ckpt.pth")
    assert set(load_state_dict_file(tmp_path / "ckpt.pth")) == set(sd)
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "dp.pth")
    assert set(load_state_dict_file(tmp_path / "dp.pth")) == set(sd)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_state_dict_file(tmp_path / "list.pt")


class _Payload:
    """Unpickling this runs a shell command (creates ``marker``)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.parametrize("writer", ["pickle", "torch.save", "pickle-as-safetensors"])
def test_pickle_with_code_is_refused(tmp_path, writer):
    # control: the payload really does run when unpickled naively
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps({"w": _Payload(control)}))
    assert control.exists()

    marker = tmp_path / "marker"
    payload = {"conv1.weight": torch.zeros(2), "evil": _Payload(marker)}
    suffix = ".safetensors" if writer == "pickle-as-safetensors" else ".pt"
    path = tmp_path / f"evil{suffix}"
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=2)
    with pytest.raises(OSError, match="refusing to load .*arbitrary code"):
        load_state_dict_file(path)
    assert not marker.exists()


def test_check_state_dict_mismatches(resnet3):
    vgg = build_network("vgg19_bn", n_bands=3)
    with pytest.raises(ValueError, match="holds weights of a vgg19_bn network, not "
                                         "resnet18"):
        check_state_dict(resnet3, vgg.state_dict(), arch="resnet18", source="file X")
    five = build_network("resnet18", n_bands=5).state_dict()
    with pytest.raises(ValueError, match="file Y has 5 input bands, but the resnet18 "
                                         "network takes 3 bands"):
        check_state_dict(resnet3, five, source="file Y")
    seven = build_network("resnet18", n_bands=3, num_classes=7).state_dict()
    with pytest.raises(ValueError, match="7 output classes.*has 4"):
        check_state_dict(resnet3, seven)
    with pytest.raises(ValueError, match="is not a resnet18 state dict"):
        check_state_dict(resnet3, {"weight": torch.zeros(3)})
    bad = dict(resnet3.state_dict())
    bad["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(ValueError, match="layer1.0.conv1.weight"):
        check_state_dict(resnet3, bad)
    check_state_dict(resnet3, resnet3.state_dict())  # no error


def test_safetensors_header_length_128_mod_256_is_not_taken_for_pickle(tmp_path):
    """A safetensors file whose first byte is 0x80 (pickle's signature) still loads."""
    import struct

    from safetensors.torch import save_file

    from astro_clustercls.models._io import _sniff, load_state_dict_file

    tensors = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    for pad in range(300):
        meta = {"notes": "x" * pad}
        path = tmp_path / f"w{pad}.safetensors"
        save_file(tensors, str(path), metadata=meta)
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
        if n % 256 == 128:
            break
    else:  # pragma: no cover
        pytest.fail("could not produce a header of 128 mod 256 bytes")
    assert path.read_bytes()[:1] == b"\x80"
    assert _sniff(path) == "safetensors"
    assert torch.equal(load_state_dict_file(path)["w"], tensors["w"])


def test_pickle_protocol_4_refused_without_warning(tmp_path):
    import pickle

    path = tmp_path / "p4.pt"
    with open(path, "wb") as f:
        pickle.dump({"w": object()}, f, protocol=4)
    from astro_clustercls.models._io import load_state_dict_file

    with pytest.raises(OSError, match="refusing|corrupt"):
        load_state_dict_file(path)
