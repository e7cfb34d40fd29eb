"""Read a pickle file without letting it run code: the one entry point for every pickle-based data format.

A pickle is a small program; ``pickle.load`` imports and calls whatever globals the file names, so a crafted
``batches.meta`` can run ``os.system``. The dataset formats read here (the CIFAR-10/100 python batches, and later the
ImageNet32 batches and the CIFAR-N ``.pt`` label files, which are plain pickles) only ever hold numbers, strings,
bytes, lists, tuples, dicts and numpy arrays. The first six are built by pickle opcodes without any global; numpy
arrays need a handful of globals, and :func:`load_pickle` admits exactly those (see :data:`ADMITTED`):

* ``numpy.ndarray``, ``numpy.dtype`` and ``_reconstruct`` (``numpy.core.multiarray`` as written by numpy 1.x and
  Python 2 -- the official CIFAR archives --, ``numpy._core.multiarray`` as written by numpy 2): protocols 0-4;
* ``_frombuffer`` (``numpy.core.numeric`` / ``numpy._core.numeric``): how numpy writes contiguous arrays with
  protocol 5, which rebuilds the array from its raw bytes (``numpy.frombuffer(...).reshape(...)``);
* ``scalar`` (``numpy.core.multiarray`` / ``numpy._core.multiarray``): numpy scalars such as ``np.int64(3)``;
* ``_codecs.encode``, only as ``encode(text, "latin1")``: how Python 3 writes ``bytes`` (the CIFAR dict keys,
  an array's raw data) with protocols 0-2. It is replaced by a function that refuses any other codec.

Every other global -- ``os.system``, ``builtins.eval``, ``subprocess``, ``functools.partial``,
``collections.OrderedDict``, torch classes -- is refused with a :class:`~noisyclr.errors.UserError` before it is
imported, so opening a crafted file has no effect beyond the error. The admitted names are mapped to objects of
this module's choosing (never looked up from the module name in the file), and ``persistent_load`` references
are refused too. A damaged or truncated file is the same one-line ``UserError``, naming the file.
"""

from __future__ import annotations

import _compat_pickle
import pickle
from pathlib import Path
from types import MappingProxyType

from ..errors import UserError

__all__ = ["ADMITTED", "load_pickle"]


class _Refused(Exception):
    def __init__(self, thing: str):
        super().__init__(thing)
        self.thing = thing


def _latin1(text, encoding="latin1"):
    """``_codecs.encode`` as Python 3 uses it to pickle ``bytes`` with protocols 0-2; any other use is refused."""
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise _Refused(f"the Python global _codecs.encode with codec {str(encoding)[:40]!r} (only 'latin1' is admitted)")
    return text.encode("latin1")


def _numpy_globals() -> dict[tuple[str, str], object]:
    import numpy as np

    try:  # numpy >= 2 (numpy 1.x has no numpy._core.multiarray / numpy._core.numeric)
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric

    table: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for package in ("numpy.core", "numpy._core"):  # files written by numpy 1.x (and Python 2) / by numpy 2
        table[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        table[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        table[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return table


#: ``(module, name)`` pairs a file may name, and what they resolve to. Nothing else is ever imported.
ADMITTED = MappingProxyType({**_numpy_globals(), ("_codecs", "encode"): _latin1})


def _display(module, name) -> str:
    """``module.name`` as Python 3 would import it; Python 2 names (``__builtin__.exec``) also as written."""
    written = f"{str(module)[:100]}.{str(name)[:100]}"
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    meant = f"{str(module)[:100]}.{str(name)[:100]}"
    return meant if meant == written else f"{meant} (written {written})"


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return ADMITTED[(module, name)]
        except (KeyError, TypeError):
            raise _Refused(f"the Python global {_display(module, name)}") from None

    def persistent_load(self, pid):
        raise _Refused(f"a persistent reference {str(pid)[:60]!r}")


def load_pickle(
    path,
    *,
    what: str,
    fix: str = "delete it and extract the archive again",
    source: str | None = None,
    encoding: str = "bytes",
) -> object:
    """Unpickle ``path`` admitting only plain data and numpy arrays (the module docstring lists what and why).

    ``what`` names the file's format in messages (e.g. ``"CIFAR-10 batch"``). ``fix`` ends the message for a damaged
    or truncated file; ``source`` (a URL) is where the official files come from, named when a file is refused.
    ``encoding="bytes"`` (the default) loads Python 2 ``str`` as ``bytes``, as the CIFAR pickles (Python 2, bytes
    keys such as ``b"data"``) need. Raises :class:`~noisyclr.errors.UserError` (one line, naming the file) when the
    file is missing, damaged, or asks for any other global; a refused global is never imported.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found; {fix}")
    try:
        with open(path, "rb") as handle:
            return _RestrictedUnpickler(handle, encoding=encoding).load()
    except _Refused as exc:
        where = f" from {source}" if source else ""
        raise UserError(
            f"{path} is not a plain {what}: it asks for {exc.thing}, which is refused (only "
            f"numbers, strings, lists, dicts and numpy arrays are read, so a data file cannot run code); delete it, "
            f"re-download the official archive{where} and extract it again"
        ) from None
    except UserError:
        raise
    except Exception as exc:  # a damaged pickle can raise almost anything
        name = type(exc).__name__
        raise UserError(f"cannot read {path} ({name}); the {what} is damaged or truncated, {fix}") from None
