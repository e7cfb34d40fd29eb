"""The restricted unpickler: plain data and numpy arrays load, anything that could run code is refused."""

from __future__ import annotations

import builtins
import collections
import functools
import os
import pathlib
import pickle
import shlex
import subprocess
import sys

import numpy as np
import pytest

from noisyclr.data.safe_pickle import ADMITTED, load_pickle
from noisyclr.errors import UserError

PROTOCOLS = sorted({2, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL})


def write(path: pathlib.Path, obj, protocol=pickle.DEFAULT_PROTOCOL) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=protocol)
    return path


def cifar_batch(n=3) -> dict:
    rng = np.random.default_rng(0)
    return {
        b"batch_label": b"training batch 1 of 5",
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"labels": list(range(n)),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def assert_one_line(exc: pytest.ExceptionInfo, *needles: str) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


# ------------------------------------------------------------------------------------------------------------
# what loads


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cifar_style_batch_round_trips(tmp_path, protocol):
    batch = cifar_batch()
    loaded = load_pickle(write(tmp_path / "data_batch_1", batch, protocol), what="CIFAR python pickle")
    assert set(loaded) == set(batch)
    assert loaded[b"data"].dtype == np.uint8 and loaded[b"data"].shape == (3, 3072)
    assert np.array_equal(loaded[b"data"], batch[b"data"])
    assert loaded[b"labels"] == [0, 1, 2] and loaded[b"filenames"][2] == b"img_2.png"
    assert loaded[b"batch_label"] == b"training batch 1 of 5"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_numpy_arrays_and_scalars_round_trip(tmp_path, protocol):
    obj = {
        "f32": np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4),
        "i64": np.arange(-5, 5, dtype=np.int64),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
        "strided": np.arange(20, dtype=np.int16)[::3],
        "big_endian": np.arange(4, dtype=">u4"),
        "structured": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]),
        "scalar": np.int64(7),
        "fscalar": np.float32(0.25),
        "dtype": np.dtype("uint8"),
        "plain": (1, 2.5, "text", b"raw", [None, True], {"k": -1}),
    }
    loaded = load_pickle(write(tmp_path / "arrays.pkl", obj, protocol), what="test pickle")
    for key in ("f32", "i64", "fortran", "strided", "structured"):
        assert loaded[key].dtype == obj[key].dtype and np.array_equal(loaded[key], obj[key]), key
    # numpy itself hands big-endian arrays back in native order below protocol 5; the values are what matters.
    assert loaded["big_endian"].dtype.kind == "u" and loaded["big_endian"].tolist() == [0, 1, 2, 3]
    assert loaded["fortran"].flags.f_contiguous
    assert loaded["scalar"] == 7 and type(loaded["scalar"]) is np.int64
    assert loaded["fscalar"] == np.float32(0.25) and loaded["dtype"] == np.dtype("uint8")
    assert loaded["plain"] == obj["plain"]


def test_python2_pickle_as_in_the_official_archive(tmp_path):
    """Python 2 ``str`` (SHORT_BINSTRING) keys and data, numpy 1.x global names: loaded as bytes, as CIFAR needs."""
    data = bytes(range(6))
    raw = (
        b"\x80\x02}(U\x04data"
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
        b"(K\x01K\x02K\x03\x86cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R"
        b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x06" + data + b"tb"
        b"U\x06labels](K\x01K\x02eu."
    )
    (tmp_path / "batch").write_bytes(raw)
    loaded = load_pickle(tmp_path / "batch", what="CIFAR python pickle")
    assert set(loaded) == {b"data", b"labels"} and loaded[b"labels"] == [1, 2]
    assert loaded[b"data"].dtype == np.uint8 and loaded[b"data"].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_only_numpy_and_latin1_globals_are_admitted():
    modules = {module for module, _ in ADMITTED}
    assert modules == {"numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                       "numpy._core.numeric", "_codecs"}
    assert len(ADMITTED) == 9
    with pytest.raises(TypeError):
        ADMITTED[("builtins", "eval")] = eval  # read-only


# ------------------------------------------------------------------------------------------------------------
# what is refused


class Payload:
    """Pickles as ``func(*args)``: what a crafted file would make ``pickle.load`` call."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payloads(marker: pathlib.Path):
    touch = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": (Payload(os.system, f"touch {shlex.quote(str(marker))}"), f"{os.system.__module__}.system"),
        "builtins.exec": (Payload(builtins.exec, touch), "builtins.exec"),
        "builtins.eval": (Payload(builtins.eval, touch), "builtins.eval"),
        # below protocol 4 a method is written as getattr(pathlib.Path, "touch"): getattr is the first refusal
        "Path.touch": (Payload(pathlib.Path.touch, pathlib.Path(marker)), ("pathlib.Path.touch", "builtins.getattr")),
        "subprocess": (Payload(subprocess.call, ["touch", str(marker)]), "subprocess.call"),
        "partial": (Payload(functools.partial(builtins.exec, touch)), "functools.partial"),
    }


@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "builtins.eval", "Path.touch", "subprocess", "partial"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_code_running_payload_is_refused_and_never_runs(tmp_path, kind, protocol):
    marker = tmp_path / "PWNED"
    payload, refused = payloads(marker)[kind]
    path = write(tmp_path / "batches.meta", {b"label_names": [b"cat"], b"x": payload}, protocol)
    with pytest.raises(UserError) as exc:
        load_pickle(path, what="CIFAR python pickle", source="https://example.org/cifar")
    message = assert_one_line(exc, str(path), "refused", "re-download the official archive from https://example.org")
    assert any(f"global {name}" in message for name in ((refused,) if isinstance(refused, str) else refused)), message
    assert not marker.exists(), message
    assert pickle.loads(path.read_bytes()) is not None and marker.exists()  # the file really was a live payload


@pytest.mark.parametrize(
    "obj, refused",
    [
        (collections.OrderedDict(a=1), "collections.OrderedDict"),
        (np.array([collections.Counter(a=1)], dtype=object), "collections.Counter"),  # inside an object array
        (bytearray(b"abc"), "bytearray"),
        ({1, 2}, "set"),  # protocol 2 writes sets via the builtin; refused though harmless
        (pathlib.PurePosixPath("x"), "pathlib.PurePosixPath"),
    ],
)
def test_harmless_but_unneeded_globals_are_refused_too(tmp_path, obj, refused):
    path = write(tmp_path / "x.pkl", obj, protocol=2)
    with pytest.raises(UserError) as exc:
        load_pickle(path, what="test pickle")
    assert_one_line(exc, str(path), refused, "refused")


@pytest.mark.parametrize(
    "module, name",
    [("torch._utils", "_rebuild_tensor_v2"), ("numpy", "load"), ("numpy.core.multiarray", "_reconstruct.__globals__"),
     ("numpy.lib.npyio", "load"), ("builtins", "getattr"), ("copyreg", "_reconstructor")],
)
def test_handwritten_global_is_refused_without_import(tmp_path, module, name):
    path = tmp_path / "g.pkl"
    path.write_bytes(b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n)R.")
    was_imported = module in sys.modules
    with pytest.raises(UserError) as exc:
        load_pickle(path, what="test pickle")
    assert_one_line(exc, f"{module}.{name}", "refused")
    assert (module in sys.modules) == was_imported


def test_refused_module_is_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "IMPORTED"
    (tmp_path / "trap_module_xyz.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef f(): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "g.pkl"
    path.write_bytes(b"\x80\x02ctrap_module_xyz\nf\n)R.")
    with pytest.raises(UserError, match="trap_module_xyz.f"):
        load_pickle(path, what="test pickle")
    assert not marker.exists() and "trap_module_xyz" not in sys.modules


def test_codecs_encode_only_as_latin1(tmp_path):
    path = tmp_path / "c.pkl"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(UserError) as exc:
        load_pickle(path, what="test pickle")
    assert_one_line(exc, "_codecs.encode", "rot13", "refused")


def test_persistent_reference_is_refused(tmp_path):
    path = tmp_path / "p.pkl"
    path.write_bytes(b"\x80\x02X\x03\x00\x00\x00keyQ.")  # BINPERSID
    with pytest.raises(UserError) as exc:
        load_pickle(path, what="test pickle")
    assert_one_line(exc, str(path), "persistent reference", "refused")


# ------------------------------------------------------------------------------------------------------------
# damaged, truncated, missing


@pytest.mark.parametrize("cut", [0, 1, 10, -40, -1])
def test_damaged_or_truncated_pickle_is_one_line(tmp_path, cut):
    good = pickle.dumps(cifar_batch(), protocol=2)
    path = tmp_path / "test_batch"
    path.write_bytes(good[:cut] if cut else b"corrupt")
    with pytest.raises(UserError) as exc:
        load_pickle(path, what="CIFAR python pickle")
    assert_one_line(exc, f"cannot read {path} (", "damaged or truncated", "delete it and extract the archive again")


def test_missing_file_and_custom_fix(tmp_path):
    with pytest.raises(UserError) as exc:
        load_pickle(tmp_path / "nope.pt", what="CIFAR-N label file", fix="download it again from the CIFAR-N page")
    assert_one_line(exc, "nope.pt not found; download it again from the CIFAR-N page")


# ------------------------------------------------------------------------------------------------------------
# the command line


def test_cli_refuses_malicious_cifar_meta(tmp_path):
    marker = tmp_path / "PWNED"
    base = tmp_path / "data" / "cifar-10-batches-py"
    names = [n.encode() for n in ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]]
    evil = Payload(os.system, f"touch {shlex.quote(str(marker))}")
    write(base / "batches.meta", {b"label_names": names, b"num_vis": 3072, b"x": evil}, protocol=2)
    for b in range(1, 6):
        write(base / f"data_batch_{b}", cifar_batch(2))
    write(base / "test_batch", cifar_batch(2))
    proc = subprocess.run(
        [sys.executable, "-m", "noisyclr", "train", "standard-ce-cifar10-sym50", f"dataset.root={tmp_path / 'data'}",
         "train.epochs=1", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{os.system.__module__}.system" in proc.stderr and "batches.meta" in proc.stderr, proc.stderr
    assert not marker.exists()
    assert not (tmp_path / "run").exists()
