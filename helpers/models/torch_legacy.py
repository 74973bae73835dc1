"""Read PyTorch's *legacy* (pre-1.6, non-zip) ``.pth`` files without PyTorch.

The legacy format written by ``torch.save(..., _use_new_zipfile_serialization=False)``
is a plain concatenation of pickles followed by raw tensor data:

1. pickle: the magic number ``0x1950a86a20f9469cfc6c``
2. pickle: the protocol version (1001)
3. pickle: a dict of system info (endianness, type sizes)
4. pickle: the object itself (here a state dict). Every tensor inside it is
   ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``
   whose ``storage`` is a *persistent id*
   ``('storage', storage_type, key, location, numel[, view_metadata])``.
5. pickle: the list of storage keys, in the order their data follows
6. for each storage: an 8-byte little-endian element count, then the raw
   little-endian bytes of that many elements.

Unpickling runs code named by the file, so the unpickler here resolves only a
short allow-list of names (the tensor rebuild function, the storage types and
``collections.OrderedDict``) and refuses everything else: a file can describe
arrays, never make Python call arbitrary functions.
"""
from __future__ import annotations

import collections
import os
import pickle
import struct
import zipfile
from typing import Any, BinaryIO

import numpy as np

__all__ = ["LegacyPthError", "load_legacy_pth", "LEGACY_MAGIC_NUMBER"]

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# torch storage class name -> numpy little-endian dtype.
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class LegacyPthError(ValueError):
    """The file is not a legacy PyTorch file this reader can (safely) read."""


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` etc.: only remembers the dtype."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"torch.{self.name}"


class _Storage:
    """A storage whose bytes are read after the object pickle; filled in later."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _TensorRef:
    """A tensor as described by ``_rebuild_tensor_v2``, materialised after the data is read."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)

    def to_numpy(self) -> np.ndarray:
        data = self.storage.data
        assert data is not None
        itemsize = data.dtype.itemsize
        if self.size and min(self.size) == 0:
            return np.zeros(self.size, dtype=data.dtype)
        # Bounds check before as_strided so a malformed file cannot read past the buffer.
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if self.offset < 0 or any(s < 0 for s in self.stride) or last >= data.size:
            raise LegacyPthError(
                f"tensor view (offset {self.offset}, size {self.size}, stride {self.stride}) "
                f"lies outside its storage of {data.size} elements"
            )
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:],
            shape=self.size,
            strides=tuple(s * itemsize for s in self.stride),
            writeable=False,
        )
        return np.array(view, copy=True)  # own, contiguous, writable


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise LegacyPthError("_rebuild_tensor_v2 called without a storage persistent id")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *args):
    # nn.Parameter wrapping a tensor (whole models saved instead of state dicts).
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that knows only the handful of names a legacy state dict uses."""

    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file: BinaryIO):
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise LegacyPthError(
            f"refusing to unpickle {module}.{name}: only tensors, storages and "
            "OrderedDict are allowed in a state dict"
        )

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise LegacyPthError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise LegacyPthError(f"unexpected storage type {storage_type!r}")
        if len(pid) > 5 and pid[5] is not None:
            # Storage views (pid[5]) were only written by very old torch versions.
            raise LegacyPthError("storage views are not supported")
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, int(numel))
        return self.storages[key]


class _PlainUnpickler(pickle.Unpickler):
    """For the header pickles and the key list, which hold only builtins."""

    def find_class(self, module: str, name: str) -> Any:
        raise LegacyPthError(f"unexpected class {module}.{name} in a .pth header")


def _materialise(obj: Any) -> Any:
    """Replace every _TensorRef in nested dicts/lists/tuples by a numpy array."""
    if isinstance(obj, _TensorRef):
        return obj.to_numpy()
    if isinstance(obj, dict):
        return type(obj)((k, _materialise(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def load_legacy_pth(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a legacy-format PyTorch state dict as ``{name: numpy array}``.

    Raises LegacyPthError for zip-format (PyTorch >= 1.6) files, for files that
    are not PyTorch legacy files at all, and for pickles naming any class beyond
    tensors, storages and OrderedDict.
    """
    path = os.fspath(path)
    if zipfile.is_zipfile(path):
        raise LegacyPthError(
            f"{path} is a zip-format (PyTorch >= 1.6) checkpoint; this reader handles "
            "only the legacy format. Re-save it with "
            "torch.save(obj, f, _use_new_zipfile_serialization=False)"
        )
    with open(path, "rb") as f:
        try:
            magic = _PlainUnpickler(f).load()
            if magic != LEGACY_MAGIC_NUMBER:
                raise LegacyPthError(f"{path} is not a legacy PyTorch file (bad magic number)")
            version = _PlainUnpickler(f).load()
            if version != LEGACY_PROTOCOL_VERSION:
                raise LegacyPthError(f"{path}: unsupported legacy protocol version {version!r}")
            sys_info = _PlainUnpickler(f).load()
            if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
                raise LegacyPthError(f"{path} was written on a big-endian machine")
            unpickler = _RestrictedUnpickler(f)
            obj = unpickler.load()
            keys = _PlainUnpickler(f).load()
        except LegacyPthError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as exc:
            raise LegacyPthError(f"{path} is not a readable legacy PyTorch file: {exc}") from exc

        if not isinstance(keys, list) or set(map(str, keys)) != set(unpickler.storages):
            raise LegacyPthError(f"{path}: storage key list does not match the tensors")
        # Storage data follows in the order of the key list.
        for key in keys:
            storage = unpickler.storages[str(key)]
            header = f.read(8)
            if len(header) != 8:
                raise LegacyPthError(f"{path} is truncated (storage {key} missing)")
            (numel,) = struct.unpack("<q", header)
            if numel != storage.numel:
                raise LegacyPthError(
                    f"{path}: storage {key} has {numel} elements, expected {storage.numel}"
                )
            nbytes = numel * storage.dtype.itemsize
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise LegacyPthError(f"{path} is truncated (storage {key})")
            storage.data = np.frombuffer(raw, dtype=storage.dtype)

    state = _materialise(obj)
    if not isinstance(state, dict):
        raise LegacyPthError(f"{path} holds a {type(state).__name__}, not a state dict")
    return dict(state)
