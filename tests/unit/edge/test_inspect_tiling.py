"""The one inspection preprocessing: tiles cover the whole image, ROI, maps, operating point math."""

from __future__ import annotations

import numpy as np
import pytest

from edgewise.edge.apps.inspect import (
    NORM_MEAN,
    NORM_STD,
    TileConfig,
    condition,
    crop_roi,
    image_score,
    make_tiles,
    parse_roi,
    prepare_part,
    score_map,
    tile_positions,
)
from edgewise.train.inspect import operating_point, recall_per_kind, synthetic_defect


@pytest.mark.parametrize("h,w", [(64, 64), (65, 64), (100, 150), (222, 103), (398, 632), (20, 300)])
@pytest.mark.parametrize("tile,stride", [(64, 32), (64, 64), (48, 40)])
def test_tiles_cover_every_pixel_and_stay_inside(h: int, w: int, tile: int, stride: int) -> None:
    img = (np.arange(h * w) % 251).astype(np.uint8).reshape(h, w)
    tiles, pos = make_tiles(img, TileConfig(tile=tile, stride=stride, scale=1.0))
    H, W = max(h, tile), max(w, tile)
    seen = np.zeros((H, W), bool)
    for y, x in pos:
        assert 0 <= y <= H - tile and 0 <= x <= W - tile
        seen[y : y + tile, x : x + tile] = True
    assert seen.all()
    assert tiles.shape == (len(pos), tile, tile)
    y, x = pos[-1]
    if h >= tile and w >= tile:  # tiles are the image's own pixels, not resampled
        np.testing.assert_array_equal(tiles[-1], img[y : y + tile, x : x + tile])
    assert len(set(pos)) == len(pos)


def test_prepare_part_applies_fixed_scale_and_gray_not_a_resize_to_fixed_size() -> None:
    bgr = np.random.default_rng(0).integers(0, 255, (300, 200, 3), dtype=np.uint8)
    gray, x, pos = prepare_part(bgr, TileConfig(tile=64, stride=32, scale=0.5))
    assert gray.shape == (150, 100)
    assert x.dtype == np.float32 and x.shape[1:] == (64, 64, 1) and 0 <= x.min() and x.max() <= 1
    assert len(pos) == len(tile_positions(150, 100, 64, 32))


def test_roi_parsing_and_cropping_errors_are_one_line() -> None:
    assert parse_roi("10,20,30,40") == (10, 20, 30, 40)
    assert parse_roi(None) is None
    with pytest.raises(ValueError, match="--roi must be x,y,w,h with non-negative integers, got '1,2,3'"):
        parse_roi("1,2,3")
    with pytest.raises(ValueError, match="--roi width and height must be > 0"):
        parse_roi("1,2,0,5")
    img = np.zeros((50, 60), np.uint8)
    assert crop_roi(img, (10, 5, 20, 30)).shape == (30, 20)
    with pytest.raises(ValueError, match=r"region of interest \(100, 0, 5, 5\) lies outside the 60x50 image"):
        crop_roi(img, (100, 0, 5, 5))


def test_tile_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="stride must be in 1..tile"):
        TileConfig(tile=64, stride=65, scale=1.0)
    with pytest.raises(ValueError, match="tile must be >= 8"):
        TileConfig(tile=4, stride=2, scale=1.0)
    with pytest.raises(ValueError, match="norm must be one of none, image, got 'zscore'"):
        TileConfig(tile=64, stride=32, scale=1.0, norm="zscore")
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        TileConfig(tile=64, stride=32, scale=1.0, top_k=0)


def test_tile_config_round_trips_and_old_bundles_default_to_max_without_norm() -> None:
    cfg = TileConfig(tile=48, stride=24, scale=0.75, norm="image", top_k=3)
    assert TileConfig.from_config({"tiling": cfg.as_dict()}) == cfg
    old = TileConfig.from_config({"tiling": {"tile": 64, "stride": 32, "scale": 0.5}})
    assert old.norm == "none" and old.top_k == 1


def test_tile_config_refuses_a_bundle_without_its_scale_instead_of_guessing_one() -> None:
    from edgewise.edge.bundle import BundleError

    with pytest.raises(BundleError, match="config.tiling lacks scale"):
        TileConfig.from_config({"tiling": {"tile": 64, "stride": 32}})
    with pytest.raises(BundleError, match="no 'tiling' section"):
        TileConfig.from_config({})
    with pytest.raises(TypeError):
        TileConfig(tile=64, stride=32)  # type: ignore[call-arg]  # no device-side default scale


def test_image_normalisation_maps_dark_and_bright_exposures_of_a_part_alike() -> None:
    rng = np.random.default_rng(0)
    part = rng.normal(0, 1, (120, 90))
    dark = np.clip(60 + 8 * part, 0, 255).astype(np.uint8)
    bright = np.clip(150 + 20 * part, 0, 255).astype(np.uint8)
    a, b = condition(dark, "image"), condition(bright, "image")
    for x in (a, b):
        assert x.dtype == np.uint8 and x.shape == dark.shape
        assert abs(x.mean() - NORM_MEAN) < 1.5 and abs(x.std() - NORM_STD) < 4
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 4  # same part, same model input
    assert condition(dark, "none") is dark
    flat = condition(np.full((10, 10), 77, np.uint8), "image")  # no contrast: no division blow-up
    assert (flat == round(NORM_MEAN)).all()


def test_image_score_is_the_max_or_the_mean_of_the_top_k_tiles() -> None:
    s = np.array([0.1, 0.9, 0.3, 0.7, -2.0])
    assert image_score(s) == pytest.approx(0.9)
    assert image_score(s, 2) == pytest.approx(0.8)
    assert image_score(s, 3) == pytest.approx((0.9 + 0.7 + 0.3) / 3)
    assert image_score(s, 10) == pytest.approx(s.mean())  # fewer tiles than k: all of them


@pytest.mark.parametrize("mean", [0, 40, 128, 215, 255])
def test_synthetic_defects_change_the_tile_and_stay_uint8_at_any_brightness(mean: int) -> None:
    rng = np.random.default_rng(mean)
    changed = 0
    for _ in range(200):
        tile = np.clip(mean + rng.normal(0, 6, (64, 64)), 0, 255).astype(np.uint8)
        out = synthetic_defect(tile, rng, tile[::-1].copy())
        assert out.dtype == np.uint8 and out.shape == tile.shape
        changed += int(np.abs(out.astype(int) - tile.astype(int)).max() > 10)
    assert changed >= 150  # nearly every synthetic defect is visible (saturated tiles hide some)


def test_score_map_takes_the_max_of_overlapping_tiles() -> None:
    pos = [(0, 0), (0, 32)]
    m = score_map(np.array([0.2, 0.9]), pos, (64, 96), 64)
    assert m[0, 0] == pytest.approx(0.2) and m[0, 40] == pytest.approx(0.9) and m[0, 95] == pytest.approx(0.9)


def test_operating_point_reaches_target_recall_and_reports_implied_precision() -> None:
    # 50 defects scored 0.51..1.0, 100 good parts scored 0..0.99
    defects = np.linspace(0.51, 1.0, 50)
    good = np.linspace(0.0, 0.99, 100)
    s = np.r_[good, defects]
    y = np.r_[np.zeros(100), np.ones(50)]
    op = operating_point(s, y, recall=0.98)
    # 0.98 * 50 = 49 defects must pass the threshold: the 2nd lowest defect score
    assert op["threshold"] == pytest.approx(defects[1])
    assert op["tp"] == 49 and op["fn"] == 1 and op["recall"] == pytest.approx(0.98)
    fp = int((good >= defects[1]).sum())
    assert op["fp"] == fp and op["precision"] == pytest.approx(49 / (49 + fp))
    assert op["false_alarm_rate"] == pytest.approx(fp / 100)
    full = operating_point(s, y, recall=1.0)
    assert full["threshold"] == pytest.approx(0.51) and full["recall"] == 1.0


def test_operating_point_without_defects_falls_back_to_false_alarm_rate() -> None:
    good = np.linspace(0, 1, 1000)
    op = operating_point(good, np.zeros(1000), recall=0.98)
    assert op["rule"].startswith("false_alarm<=0.01")
    assert op["recall"] is None and op["false_alarm_rate"] <= 0.01


def test_recall_per_kind_counts_each_defect_kind_separately() -> None:
    r = recall_per_kind(
        np.array([0.1, 0.9, 0.8, 0.2, 0.7]), ["good", "crack", "crack", "blowhole", "good"], 0.5
    )
    assert r == {"good": 0.5, "blowhole": 0.0, "crack": 1.0}
