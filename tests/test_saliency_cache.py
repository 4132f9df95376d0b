import json
import os
import sys

import numpy as np
import pytest

from cutswap import saliency
from cutswap.backbones import create_backbone
from cutswap.saliency import compute_saliency, saliency_cache

SIZE = 48
LAYERS = ["blocks.4", "blocks.2"]


@pytest.fixture(scope="module")
def model():
    return create_backbone("efficientnet_lite0")


@pytest.fixture()
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(3, SIZE, SIZE, 3), dtype=np.uint8)


def _sources(count, mtime_ns=1):
    return [{"path": f"/data/{i}.png", "size": 100 + i, "mtime_ns": mtime_ns} for i in range(count)]


@pytest.fixture()
def counted(monkeypatch):
    calls = []
    original = saliency._compute_into

    def wrapper(out, images, *args, **kwargs):
        calls.append(images.shape[0])
        return original(out, images, *args, **kwargs)

    monkeypatch.setattr(saliency, "_compute_into", wrapper)
    return calls


def _cache(directory, images, model, **overrides):
    options = dict(layers=LAYERS, progress=False, model=model, batch_size=2, device="cpu")
    options.update(overrides)
    sources = options.pop("sources", _sources(len(images)))
    return saliency_cache(str(directory), images, sources, **options)


def test_compute_saliency_shape(images, model):
    maps = compute_saliency(images, layers=LAYERS, batch_size=2, progress=False, model=model, device="cpu")
    assert maps.shape == (3, 2, SIZE, SIZE)
    assert maps.dtype == np.uint8
    assert np.all(maps.reshape(3, 2, -1).max(axis=2) == 255)


def test_compute_saliency_empty(model):
    maps = compute_saliency(
        np.zeros((0, SIZE, SIZE, 3), np.uint8), layers=LAYERS, model=model, progress=False
    )
    assert maps.shape == (0, 2, SIZE, SIZE)


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (np.zeros((1, 8, 8, 3), np.float32), TypeError, "uint8"),
        (np.zeros((8, 8, 3), np.uint8), ValueError, r"\(N, S, S, 3\)"),
        ([[0]], TypeError, "numpy array"),
    ],
)
def test_compute_saliency_rejects(images, error, match, model):
    with pytest.raises(error, match=match):
        compute_saliency(images, model=model, progress=False)


def test_cache_hit(tmp_path, images, model, counted):
    first = _cache(tmp_path, images, model)
    second = _cache(tmp_path, images, model)
    assert counted == [3]
    assert isinstance(second, np.memmap)
    assert not second.flags.writeable
    assert second.shape == (3, 2, SIZE, SIZE)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(
        second, compute_saliency(images, layers=LAYERS, model=model, progress=False, device="cpu")
    )


def test_cache_metadata(tmp_path, images, model):
    maps = _cache(tmp_path, images, model)
    (metadata_file,) = tmp_path.glob("*.json")
    metadata = json.loads(metadata_file.read_text())
    key = metadata["key"]
    assert key["backbone"] == "efficientnet_lite0"
    assert key["layers"] == LAYERS
    assert key["size"] == SIZE
    assert key["sources"] == _sources(3)
    assert key["package_version"] == saliency.package_version()
    assert metadata["shape"] == list(maps.shape)
    assert os.path.splitext(maps.filename)[0] == os.path.splitext(str(metadata_file))[0]


@pytest.mark.parametrize(
    "change",
    ["mtime", "layers", "pixels", "backbone_version"],
)
def test_cache_invalidated(tmp_path, images, model, counted, monkeypatch, change):
    _cache(tmp_path, images, model)
    overrides = {}
    if change == "mtime":
        overrides["sources"] = _sources(3, mtime_ns=2)
    elif change == "layers":
        overrides["layers"] = ["blocks.2"]
    elif change == "pixels":
        images = images.copy()
        images[0, 0, 0, 0] ^= 1
    else:
        monkeypatch.setattr(saliency, "package_version", lambda: "99.0")
    maps = _cache(tmp_path, images, model, **overrides)
    assert counted == [3, 3]
    assert maps.shape[1] == (1 if change == "layers" else 2)
    _cache(tmp_path, images, model, **overrides)
    assert counted == [3, 3]


def test_array_without_metadata_recomputed(tmp_path, images, model, counted):
    maps = _cache(tmp_path, images, model)
    path = maps.filename
    del maps
    for metadata_file in tmp_path.glob("*.json"):
        metadata_file.unlink()
    _cache(tmp_path, images, model)
    assert counted == [3, 3]
    assert os.path.exists(path)


def test_truncated_array_recomputed(tmp_path, images, model, counted):
    maps = _cache(tmp_path, images, model)
    path = maps.filename
    expected = np.array(maps)
    del maps
    with open(path, "r+b") as file:
        file.truncate(os.path.getsize(path) // 2)
    again = _cache(tmp_path, images, model)
    assert counted == [3, 3]
    np.testing.assert_array_equal(again, expected)


def test_wrong_shape_array_recomputed(tmp_path, images, model, counted):
    maps = _cache(tmp_path, images, model)
    path = maps.filename
    del maps
    np.save(path, np.zeros((3, 2, SIZE, SIZE - 1), np.uint8))
    again = _cache(tmp_path, images, model)
    assert counted == [3, 3]
    assert again.shape == (3, 2, SIZE, SIZE)


def test_interrupted_write_leaves_no_cache(tmp_path, images, model, monkeypatch):
    original = saliency._compute_into

    def interrupted(out, *args, **kwargs):
        out[:1] = 7
        raise KeyboardInterrupt

    monkeypatch.setattr(saliency, "_compute_into", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _cache(tmp_path, images, model)
    assert list(tmp_path.iterdir()) == []

    calls = []
    monkeypatch.setattr(saliency, "_compute_into", lambda *a, **k: (calls.append(1), original(*a, **k)))
    maps = _cache(tmp_path, images, model)
    assert calls == [1]
    expected = compute_saliency(images, layers=LAYERS, model=model, progress=False, device="cpu")
    np.testing.assert_array_equal(maps, expected)


def test_stale_temporary_file_ignored(tmp_path, images, model, counted):
    (tmp_path / ".saliency-stale.npy.123.abc.tmp").write_bytes(b"partial")
    _cache(tmp_path, images, model)
    _cache(tmp_path, images, model)
    assert counted == [3]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sources": _sources(2)}, ValueError, "each of the 3 images"),
        ({"size": SIZE + 1}, ValueError, "size="),
        ({"sources": [{"path": object()}] * 3}, TypeError, "JSON"),
        ({"batch_size": 0}, ValueError, "batch_size"),
    ],
)
def test_cache_rejects(tmp_path, images, model, kwargs, error, match):
    with pytest.raises(error, match=match):
        _cache(tmp_path, images, model, **kwargs)


def test_cli_end_to_end(tmp_path, capsys):
    from PIL import Image

    normal_dir = tmp_path / "normal"
    normal_dir.mkdir()
    rng = np.random.default_rng(1)
    for index in range(4):
        pixels = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(normal_dir / f"{index}.png")

    cache_dir = tmp_path / "cache"
    grid = tmp_path / "grid.png"
    arguments = [
        "--dataset", "folder", "--normal-dir", str(normal_dir), "--test-ratio", "0.25",
        "--size", "32", "--layers", "blocks.4,blocks.1", "--batch-size", "2",
        "--cache", str(cache_dir), "--grid", str(grid), "--grid-count", "2", "--no-progress",
    ]  # fmt: skip
    assert saliency.main(arguments) == 0

    output = capsys.readouterr().out
    assert "(3, 2, 32, 32)" in output
    (array_file,) = cache_dir.glob("*.npy")
    assert np.load(array_file).shape == (3, 2, 32, 32)
    assert len(list(cache_dir.glob("*.json"))) == 1
    assert grid.stat().st_size > 0
    with Image.open(grid) as image:
        assert image.width > image.height

    assert saliency.main(arguments[:-5] + ["--limit", "2", "--no-progress"]) == 0
    assert "(2, 2, 32, 32)" in capsys.readouterr().out


def test_cli_needs_output(capsys):
    with pytest.raises(SystemExit):
        saliency.main(["--dataset", "folder", "--normal-dir", "x"])
    assert "--cache DIR, --grid PNG" in capsys.readouterr().err


@pytest.mark.parametrize("use_augment", [True, False])
def test_salient_cluster_is_top_cluster(monkeypatch, use_augment):
    if not use_augment:
        monkeypatch.setitem(sys.modules, "cutswap.augment", None)  # forces the sklearn fallback
    level_map = np.zeros((16, 16), np.uint8)
    level_map[:4, :4] = 250
    level_map[8:, 8:] = 120
    mask = saliency._salient_cluster(level_map)
    assert mask.dtype == bool
    assert mask[:4, :4].all()
    assert int(mask.sum()) == 16
