"""Builders for the bad-input corpus (``test_bad_inputs.py``): tiny SYNTHETIC bundles, hostile
images, videos, recordings and zips, made in a test's temporary folder, and the two ways the
corpus runs the command (in this process, or in a child with a timeout).

Nothing here is real data: the models are a few matrix products written with ``onnx.helper``
(no training, no TensorFlow), the images and signals are generated.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import wave
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgewise.edge.bundle import BundleWriter, Variant, reopen
from edgewise.edge.cli import main

REPO = Path(__file__).resolve().parents[2]
IMG = 8  # the classify bundle's input side (grey)
FS = 12000.0  # the vibration bundle's sampling rate
WINDOW = 2048  # ... and its window


# -- running the command ---------------------------------------------------------------------------


def run_inproc(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``edgewise ARGV`` in this process: exit code, stdout, stderr."""
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse errors raised from a subcommand's own parser
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    out, err = capsys.readouterr()
    return rc, out, err


def unprivileged_prefix() -> list[str] | None:
    """What to put before a command so file permissions apply to it: nothing for a normal user;
    for root, ``setpriv`` without the two capabilities that bypass them (root stays root, so the
    interpreter under /root still runs). None when neither is possible."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def run_child(argv: list[str], *, timeout: float = 60, stdin: bytes | None = None,
              unprivileged: bool = False, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``edgewise ARGV`` in a child process (exit code, stdout, stderr), killed after ``timeout``."""
    prefix: list[str] = []
    if unprivileged:
        got = unprivileged_prefix()
        if got is None:
            pytest.skip("running as root without setpriv: file permissions cannot be enforced")
        prefix = got
    r = subprocess.run([*prefix, sys.executable, "-m", "edgewise.edge.cli", *argv], input=stdin,
                       capture_output=True, timeout=timeout, env={**os.environ, **(env or {})})
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


# -- models and bundles ----------------------------------------------------------------------------


def onnx_model(n_in: int | tuple[int, ...], n_out: int, *, softmax: bool = False,
               weights: np.ndarray | None = None) -> bytes:
    """``x`` (batch, *n_in) flattened, times a fixed matrix (and a softmax): a real, loadable model."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    shape = (n_in,) if isinstance(n_in, int) else tuple(n_in)
    flat = int(np.prod(shape))
    w = weights if weights is not None else np.linspace(-1, 1, flat * n_out, dtype=np.float32).reshape(flat,
                                                                                                        n_out)
    init = [helper.make_tensor("w", TensorProto.FLOAT, [flat, n_out], w.astype(np.float32).ravel().tolist())]
    nodes = [helper.make_node("Flatten", ["x"], ["xf"], axis=1),
             helper.make_node("MatMul", ["xf", "w"], ["y0"])]
    nodes.append(helper.make_node("Softmax" if softmax else "Identity", ["y0"], ["y"], **(
        {"axis": 1} if softmax else {})))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", *shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", n_out])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def classify_bundle(root: Path, *, classes: int = 3, zip_path: Path | None = None) -> Path:
    """A grey 8x8 image classifier (``app: classify``) with one ONNX float32 variant."""
    pytest.importorskip("onnxruntime")
    w = BundleWriter(root, name="corpus-classify", task="classification", app="classify")
    w.add_bytes("model.onnx", onnx_model((IMG, IMG, 1), classes, softmax=True))
    w.meta["input"] = {"shape": [None, IMG, IMG, 1], "dtype": "float32", "layout": "NHWC", "color": "gray",
                       "normalization": {"scale": 1 / 255, "offset": 0.0}}
    w.meta["output"] = {"shape": [None, classes], "dtype": "float32", "kind": "probabilities"}
    w.meta["labels"] = [f"c{i}" for i in range(classes)]
    w.add_variant(Variant("onnx_float32", "model.onnx", "onnxruntime", "float32"))
    return w.finish(zip_path)


def vibration_bundle(root: Path) -> Path:
    """A vibration bundle (features -> an 'autoencoder' that halves them): runs, decides nothing real."""
    pytest.importorskip("onnxruntime")
    from edgewise.edge.apps.vibration.features import FeatureConfig, FeatureExtractor

    cfg = FeatureConfig()
    probe = np.random.default_rng(0).normal(size=(1, WINDOW))
    dim = FeatureExtractor(FS, WINDOW, cfg).transform(probe)[0].shape[1]
    w = BundleWriter(root, name="corpus-vibration", task="anomaly_detection", app="vibration")
    w.add_bytes("model.onnx", onnx_model(dim, dim, weights=np.eye(dim, dtype=np.float32) * 0.5))
    w.meta["input"] = {"shape": [None, dim], "dtype": "float32", "layout": "NC",
                       "normalization": {"mean": [0.0] * dim, "std": [1.0] * dim}}
    w.meta["output"] = {"shape": [None, dim], "dtype": "float32", "kind": "reconstruction"}
    w.meta["thresholds"] = {"decision": 1.0}
    w.meta["config"] = {"fs": FS, "window": WINDOW, "features": cfg.to_dict(),
                        "alarm": {"n": 2, "m": 3, "clear_ratio": 0.5}}
    w.add_variant(Variant("onnx_float32", "model.onnx", "onnxruntime", "float32"))
    return w.finish()


def edit_meta(root: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    """Change bundle.json in place (checksums untouched)."""
    meta = json.loads((root / "bundle.json").read_text())
    change(meta)
    (root / "bundle.json").write_text(json.dumps(meta))
    return root


def reseal(root: Path) -> Path:
    """Rewrite every checksum to match the files as they are now (what a forger would do)."""
    reopen(root).finish()
    return root


# -- zips ------------------------------------------------------------------------------------------


def zip_of(path: Path, members: dict[str, bytes], *, symlink: str | None = None,
           encrypted: str | None = None) -> Path:
    """A zip with these members; ``symlink`` / ``encrypted`` name a member flagged that way."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name == symlink:
                info.external_attr = (0o120777 << 16)
            zf.writestr(info, data)
    if encrypted:
        raw = bytearray(path.read_bytes())
        # set bit 0 (encrypted) of the general-purpose flags in the local and central headers
        for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            i = raw.find(sig)
            while i != -1:
                name_at = i + (30 if sig == b"PK\x03\x04" else 46)
                n = struct.unpack("<H", raw[i + (26 if sig == b"PK\x03\x04" else 28):][:2])[0]
                if raw[name_at:name_at + n].decode() == encrypted:
                    raw[i + off] |= 1
                i = raw.find(sig, i + 4)
        path.write_bytes(bytes(raw))
    return path


def zip_bundle_members(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def underdeclared_zip(path: Path, bundle_root: Path, member: str, real: int) -> Path:
    """A zip whose directory says ``member`` is 10 bytes while it inflates to ``real`` bytes."""
    members = zip_bundle_members(bundle_root)
    members[member] = b"\x00" * real
    zip_of(path, members)
    raw = bytearray(path.read_bytes())
    name = member.encode()
    for sig, size_off, name_off in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        i = raw.find(sig)
        while i != -1:
            if raw[i + name_off:i + name_off + len(name)] == name:
                raw[i + size_off:i + size_off + 4] = struct.pack("<I", 10)
            i = raw.find(sig, i + 4)
    path.write_bytes(bytes(raw))
    return path


# -- images ----------------------------------------------------------------------------------------


def png(w: int = 16, h: int = 16, channels: int = 1, dtype: Any = np.uint8) -> bytes:
    import cv2

    shape = (h, w) if channels == 1 else (h, w, channels)
    img = (np.arange(int(np.prod(shape))) % 251).astype(dtype).reshape(shape)
    if dtype == np.uint16:
        img = img * 257
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def jpeg(w: int = 16, h: int = 16) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", (np.arange(w * h) % 251).astype(np.uint8).reshape(h, w))
    assert ok
    return buf.tobytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(w: int = 60000, h: int = 60000) -> bytes:
    """A valid-looking PNG of a few dozen bytes whose header claims ``w`` x ``h`` pixels."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    idat = _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + idat + _png_chunk(b"IEND", b"")


def jpeg_bomb(w: int = 65000, h: int = 65000) -> bytes:
    sof = struct.pack(">BHHB", 8, h, w, 1) + bytes([1, 0x11, 0])
    return b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9"


def bmp_bomb(w: int = 60000, h: int = 60000) -> bytes:
    dib = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + dib


def gif_bomb() -> bytes:
    return b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00" + b"\x3b"


def webp_bomb() -> bytes:
    body = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (59999).to_bytes(3, "little") \
        + (59999).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def tiff_bomb() -> bytes:
    entries = struct.pack("<HHII", 256, 4, 1, 60000) + struct.pack("<HHII", 257, 4, 1, 60000)
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2) + entries + struct.pack("<I", 0)


def pnm_bomb() -> bytes:
    return b"P5\n60000 60000\n255\n" + b"\x00" * 16


# -- video -----------------------------------------------------------------------------------------


def avi(path: Path, frames: int = 6, size: tuple[int, int] = (32, 24), fourcc: str = "MJPG") -> Path:
    """A small Motion-JPEG AVI written by OpenCV (``frames`` may be 0: a container with no frame)."""
    import cv2

    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, size)
    for i in range(frames):
        vw.write(np.full((size[1], size[0], 3), (i * 40) % 256, np.uint8))
    vw.release()
    return path


# -- recordings ------------------------------------------------------------------------------------


def signal(n: int = WINDOW * 3, fs: float = FS) -> np.ndarray:
    t = np.arange(n) / fs
    return 0.5 * np.sin(2 * np.pi * 157.0 * t) + 0.05 * np.random.default_rng(1).normal(size=n)


def wav(path: Path, x: np.ndarray | None = None, rate: int = int(FS), channels: int = 1) -> Path:
    x = signal() if x is None else x
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(np.repeat(pcm, channels).tobytes())
    return path


def wav_bytes(fmt_tag: int = 1, channels: int = 1, rate: int = int(FS), bits: int = 16,
              data: bytes | None = None, with_data: bool = True) -> bytes:
    """A RIFF/WAVE file written by hand, so its header can say anything."""
    block = channels * -(-bits // 8)  # whole bytes per sample, as 12-bit PCM is stored
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if with_data:
        payload = data if data is not None else b"\x00\x01" * (WINDOW * 2)
        body += b"data" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def mat(path: Path, arrays: dict[str, Any]) -> Path:
    scipy_io = pytest.importorskip("scipy.io")
    scipy_io.savemat(str(path), arrays)
    return path


def npy_object(path: Path) -> Path:
    """An object array: saving it pickles; loading it would run the pickle."""
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    path.write_bytes(buf.getvalue())
    return path
