"""Loading pickles that a user hands the project (submission files, score dumps) without
running code from them.

A pickle names the callables that rebuild its objects ("globals", `module.name`) and the
unpickler calls them; a plain `pickle.load` of an untrusted file can therefore run anything
(`os.system`, ...). `safe_load` resolves only the globals that rebuild numpy arrays, numpy
scalars and dtypes, and plain containers; any other global is refused *before* it is called,
with `UnsafePickleError` naming the file and the refused `module.name`. Truncated or corrupt
files raise `UnsafePickleError`'s sibling `CorruptPickleError`, also naming the file.

What a pickle of the allowed objects refers to, per protocol (checked with pickletools):
  numpy array       numpy(._core|.core).multiarray._reconstruct, numpy.ndarray, numpy.dtype;
                    protocol 5 uses numpy(._core|.core).numeric._frombuffer instead
  numpy scalar      numpy(._core|.core).multiarray.scalar, numpy.dtype
  bytes (protocol 2) _codecs.encode(text, "latin1"), the way protocol 2 spells a bytes literal
  set, frozenset    builtins.set / builtins.frozenset (`__builtin__` in protocol 2)
  OrderedDict       collections.OrderedDict
dict, list, tuple, str, int, float, bool and None have opcodes of their own; the builtin type
names are allowed too, since calling them on the unpickled values runs nothing else.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle

__all__ = ["UnsafePickleError", "CorruptPickleError", "safe_load", "numpy_safe_globals"]


class UnsafePickleError(ValueError):
    """A pickle refers to a global outside the allow-list (it was not called); `.refused` is
    its `module.name`."""

    def __init__(self, message: str, refused: str = ""):
        super().__init__(message)
        self.refused = refused


class CorruptPickleError(ValueError):
    """A pickle is truncated or malformed."""


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    """`_codecs.encode` restricted to what protocol 2 writes for a bytes object."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode is allowed only as encode(str, 'latin1'), the "
                                     f"protocol-2 form of a bytes literal; got encoding {encoding!r}")
    return text.encode("latin1", errors)


# numpy 2 moved numpy.core to numpy._core; pickles written by either name the module they ran.
_NUMPY_CORE_MODULES = ("numpy._core", "numpy.core")
_NUMPY_CORE_NAMES = {"multiarray": ("_reconstruct", "scalar"), "numeric": ("_frombuffer",)}
_BUILTIN_TYPES = {t.__name__: t for t in (dict, list, tuple, set, frozenset, str, bytes, bytearray,
                                          int, float, bool, complex)}


def _resolve_numpy_core(submodule: str, name: str):
    """The object `numpy._core.<submodule>.<name>` (numpy 2) or `numpy.core...` (numpy 1),
    whichever this numpy has, imported without numpy 2's deprecation shim for numpy.core."""
    for package in _NUMPY_CORE_MODULES:
        try:
            return getattr(importlib.import_module(f"{package}.{submodule}"), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {submodule}.{name}")


def _allowed_global(module: str, name: str):
    """The object for an allowed (module, name), or None when it is not allowed."""
    if module in ("builtins", "__builtin__"):
        return _BUILTIN_TYPES.get(name)
    if module == "collections" and name == "OrderedDict":
        import collections
        return collections.OrderedDict
    if module == "_codecs" and name == "encode":
        return _latin1_encode
    if module == "numpy" and name in ("ndarray", "dtype"):
        import numpy
        return getattr(numpy, name)
    for package in _NUMPY_CORE_MODULES:
        for submodule, names in _NUMPY_CORE_NAMES.items():
            if module == f"{package}.{submodule}" and name in names:
                return _resolve_numpy_core(submodule, name)
    return None


def numpy_safe_globals() -> list:
    """The numpy objects `torch.load(weights_only=True)` must be allowed (via
    `torch.serialization.safe_globals`) to read numpy arrays and scalars saved with
    `torch.save`: the same reconstructors `safe_load` allows, plus the dtype classes of the
    numeric, bool, str and bytes dtypes (torch's unpickler checks a dtype's class too)."""
    import numpy as np
    kinds = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
             np.float16, np.float32, np.float64, np.str_, np.bytes_)
    return [_resolve_numpy_core("multiarray", "_reconstruct"), _resolve_numpy_core("multiarray", "scalar"),
            np.ndarray, np.dtype] + [type(np.dtype(k)) for k in kinds]


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, where: str, what: str):
        super().__init__(file)
        self._where, self._what = where, what

    def find_class(self, module, name):
        obj = _allowed_global(module, name)
        if obj is None:
            raise UnsafePickleError(f"{self._where}: {self._what} refers to {module}.{name}, which is not "
                                    f"allowed (only numpy arrays/scalars and plain containers are loaded "
                                    f"from untrusted pickles); nothing from the file was run", f"{module}.{name}")
        return obj

    def persistent_load(self, pid):
        raise pickle.UnpicklingError(f"persistent id {pid!r} is not supported")


def safe_load(path_or_file, what: str = "pickle"):
    """Unpickle `path_or_file` (a path or a binary file object) allowing only numpy arrays,
    numpy scalars/dtypes and plain containers (see the module docstring).

    `what` says what the file is ("EPIC-100 submission"), for the messages. Raises
    UnsafePickleError for a refused global and CorruptPickleError for a missing, truncated or
    malformed file; both name the file.
    """
    if isinstance(path_or_file, (str, os.PathLike)):
        where = os.fspath(path_or_file)
        if not os.path.isfile(where):
            raise CorruptPickleError(f"{where}: {what} not found")
        with open(where, "rb") as f:
            return _load(f, where, what)
    where = getattr(path_or_file, "name", None)
    where = where if isinstance(where, str) else "<file object>"
    return _load(path_or_file, where, what)


def _load(file: io.BufferedIOBase, where: str, what: str):
    try:
        return _RestrictedUnpickler(file, where, what).load()
    except UnsafePickleError:
        raise
    except RecursionError:
        raise CorruptPickleError(f"{where}: {what} is nested too deeply to unpickle") from None
    except Exception as e:  # every other failure of a malformed stream: EOF, bad opcode, bad state
        detail = str(e) or type(e).__name__
        raise CorruptPickleError(f"{where}: {what} is not a readable pickle (truncated or corrupt: "
                                 f"{detail})") from None
