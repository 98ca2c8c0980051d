"""Vibration data: CWRU as published, recordings (wav/npy/csv/mat), synthetic, sources, ADXL345."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest

from edgewise.edge.sources.adxl345 import ADXL345, ADXL345Source
from edgewise.edge.sources.recordings import decimate, read_recording, to_rate
from edgewise.edge.sources.windows import RecordingSource, StdinSource
from edgewise.train.data.cwru import DEFAULT_NORMAL_FS, load_cwru, rate_evidence, read_cwru_mat
from edgewise.train.data.synthetic_vibration import KINDS, synthesize, synthetic_dataset


@pytest.mark.realdata
def test_cwru_loader_reads_every_file_at_its_stated_rate(data_dir: Path):
    recs = load_cwru(data_dir, channel="DE")
    assert recs[0].label == "normal" and recs[0].name == "Normal_0"
    assert recs[0].meta["resampled_from_hz"] == DEFAULT_NORMAL_FS == 48000
    assert len(recs[0].signal) == pytest.approx(243938 / 4, abs=1)
    assert all(r.fs == 12000 for r in recs)
    labels = {r.label for r in recs[1:]}
    assert labels == {"inner_race", "outer_race", "ball"}
    assert len(recs) == 16
    fe = load_cwru(data_dir, channel="FE")  # the *028 files hold only DE: skipped, not invented
    assert len(fe) == 14


@pytest.mark.realdata
def test_healthy_rate_is_an_explicit_choice(data_dir: Path):
    f = data_dir / "vibration/cwru/Normal/Normal_0.mat"
    with pytest.raises(ValueError, match="a sampling rate in Hz is required"):
        read_cwru_mat(f, fs=0)
    at12 = load_cwru(data_dir, normal_fs=12000)[0]
    assert "resampled_from_hz" not in at12.meta and len(at12.signal) == 243938


@pytest.mark.realdata
def test_rate_evidence_favours_48khz_for_the_healthy_recording(data_dir: Path):
    ev = rate_evidence(data_dir)
    assert ev["48000"] > 0.5 > ev["12000"]


@pytest.mark.realdata
def test_edge_reader_reads_cwru_mat_and_needs_the_rate(data_dir: Path):
    f = data_dir / "vibration/cwru/12k_DE/IR007_0.mat"
    with pytest.raises(ValueError, match=r"IR007_0.mat: this format carries no sampling rate; pass it"):
        read_recording(f)
    rec = read_recording(f, fs=12000, channel="DE")
    ref = read_cwru_mat(f, fs=12000)
    np.testing.assert_array_equal(rec.signal, ref.signal)
    with pytest.raises(ValueError, match="no '\\*_FE_time' channel"):
        read_recording(data_dir / "vibration/cwru/12k_DE/IR028_0.mat", fs=12000, channel="FE")


def test_synthetic_recordings_are_labelled_synthetic():
    for kind in KINDS:
        r = synthesize(kind, seconds=0.5, seed=1)
        assert r.label.startswith("synthetic_") and r.meta["synthetic"] is True
    recs = synthetic_dataset(seconds=1.0)
    assert all(r.meta["synthetic"] for r in recs)
    with pytest.raises(ValueError, match="kind must be one of"):
        synthesize("cracked")


def test_wav_rate_comes_from_the_header(tmp_path: Path):
    x = (np.sin(np.arange(8000) / 10) * 20000).astype("<i2")
    p = tmp_path / "rec.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(x.tobytes())
    rec = read_recording(p)
    assert rec.fs == 8000 and len(rec.signal) == 8000
    np.testing.assert_allclose(rec.signal, x / 32768.0)
    with pytest.raises(ValueError, match="WAV header says 8000 Hz, but --fs 12000 was given"):
        read_recording(p, fs=12000)


def test_npy_and_csv_need_the_rate_and_pick_columns(tmp_path: Path):
    np.save(tmp_path / "a.npy", np.arange(100.0))
    with pytest.raises(ValueError, match="a.npy: this format carries no sampling rate"):
        read_recording(tmp_path / "a.npy")
    assert read_recording(tmp_path / "a.npy", fs=1000).fs == 1000
    (tmp_path / "b.csv").write_text("t,acc\n" + "\n".join(f"{i},{i * 2}" for i in range(50)))
    rec = read_recording(tmp_path / "b.csv", fs=100, channel="acc")
    assert rec.signal[:3].tolist() == [0, 2, 4]
    with pytest.raises(ValueError, match="no column 'z'"):
        read_recording(tmp_path / "b.csv", fs=100, channel="z")


def test_decimation_keeps_low_frequencies_and_removes_aliases():
    fs = 48000
    t = np.arange(fs) / fs
    low = np.sin(2 * np.pi * 100 * t)
    high = np.sin(2 * np.pi * 20000 * t)  # would alias to 4 kHz at 12 kHz without the filter
    y_low, y_high = decimate(low, 4)[500:-500], decimate(high, 4)[500:-500]
    assert np.std(y_low) == pytest.approx(np.std(low), rel=0.01)
    assert np.std(y_high) < 0.01
    with pytest.raises(ValueError, match="only integer decimation"):
        to_rate(synthesize(seconds=0.1), 5000.0)


def test_recording_source_paces_in_real_time():
    import time

    src = RecordingSource(np.zeros(1200), fs=12000, window=300, realtime=True)
    t0 = time.monotonic()
    with src:
        frames = list(src)
    assert len(frames) == 4 and frames[1].meta["t_signal"] == 0.025 and frames[0].meta["fs"] == 12000
    assert time.monotonic() - t0 >= 0.09  # 1200 samples at 12 kHz = 0.1 s


def test_stdin_text_bad_line_becomes_a_nan_window():
    lines = "\n".join(["0.1"] * 8 + ["oops"] + ["0.2"] * 7) + "\n"
    src = StdinSource(fs=100, window=8, stream=io.StringIO(lines))
    with src:
        frames = list(src)
    assert len(frames) == 2 and np.isnan(frames[1].data).sum() == 1 and src.bad_lines == 1
    with pytest.raises(ValueError, match="stdin carries no sampling rate"):
        StdinSource(fs=None, window=8)  # type: ignore[arg-type]


class RecordedBus:
    """Replays a recorded ADXL345 register stream: FIFO counts and 6-byte DATAX0 reads.

    The stream here is generated by the test (a 50 Hz sine on z at 3200 Hz, +-1 g, encoded
    exactly as the chip's full-resolution registers): it exercises the driver's register
    protocol and decoding, not a physical sensor.
    """

    def __init__(self, samples_g: np.ndarray, fifo_batches: list[int]) -> None:
        counts = np.round(samples_g / ADXL345.G_PER_LSB).astype("<i2")
        self.blocks = [bytes(c.tobytes()) for c in counts]
        self.batches = list(fifo_batches)
        self.writes: list[tuple[int, int]] = []
        self.pending = 0
        self.exhausted = False

    def read_byte_data(self, addr: int, reg: int) -> int:
        if reg == ADXL345.DEVID:
            return 0xE5
        if reg == ADXL345.FIFO_STATUS:
            if self.pending == 0:
                self.pending = self.batches.pop(0) if self.batches else 0
                self.exhausted = not self.batches and self.pending == 0
            return self.pending
        raise AssertionError(f"unexpected read of register 0x{reg:02x}")

    def write_byte_data(self, addr: int, reg: int, value: int) -> None:
        self.writes.append((reg, value))

    def read_i2c_block_data(self, addr: int, reg: int, n: int) -> list[int]:
        assert reg == ADXL345.DATAX0 and n == 6
        self.pending -= 1
        return list(self.blocks.pop(0))


def test_adxl345_driver_decodes_a_recorded_register_stream():
    t = np.arange(640) / 3200
    xyz = np.stack([np.zeros_like(t), np.full_like(t, 0.5), np.sin(2 * np.pi * 50 * t)], axis=1)
    bus = RecordedBus(xyz, [32] * 20)
    with ADXL345Source(window=256, hop=128, bus=bus, rate=3200, axis="z") as src:
        frames = list(src)
    assert (ADXL345.BW_RATE, 0x0F) in bus.writes and (ADXL345.POWER_CTL, 0x08) in bus.writes
    assert bus.writes[-1] == (ADXL345.POWER_CTL, 0x00)  # standby on exit
    assert len(frames) == 4 and frames[0].meta["fs"] == 3200
    np.testing.assert_allclose(frames[1].data, xyz[128:384, 2], atol=ADXL345.G_PER_LSB)


def test_adxl345_wrong_device_id_is_a_clear_error():
    class Other(RecordedBus):
        def read_byte_data(self, addr: int, reg: int) -> int:
            return 0x00

    with pytest.raises(OSError, match="no ADXL345 at 0x53 \\(device id 0x00, expected 0xe5\\)"):
        ADXL345(Other(np.zeros((1, 3)), [])).setup()


def test_threshold_folds_never_fit_on_a_sample_of_their_held_out_block():
    from edgewise.train.vibration import time_folds

    win_s, hop_s = 2048 / 12000, 128 / 12000
    t = np.arange(200) * hop_s
    folds = time_folds(t, win_s, 4)
    covered = np.zeros(len(t), bool)
    for held, fit in folds:
        assert held.any() and fit.sum() > 8
        covered |= held
        for s in t[fit]:  # every fit window's [s, s + win) misses every held window's samples
            assert (s + win_s <= t[held].min()) or (s >= t[held].max() + win_s)
    assert covered.all()
