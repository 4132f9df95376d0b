import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from cutswap import Detector
from cutswap.config import preset
from cutswap.data import ImageReadError, read_image
from cutswap.localization import LOCALIZATION_FILE, save_localization
from cutswap.runs import CONFIG_FILE, DENSITY_FILE, METRICS_FILE, MODEL_FILE
from cutswap.train import train

SIZE = 64


def _texture(rng, size=72):
    # A striped texture with noise, like a repetitive industrial surface.
    stripes = (np.sin(np.arange(size) / 3.0) * 60 + 128)[None, :].repeat(size, 0)
    return np.clip(stripes + rng.normal(0, 10, (size, size)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("data")
    (root / "normal").mkdir()
    (root / "abnormal").mkdir()
    for index in range(20):
        image = _texture(rng)
        if index >= 14:
            image[20:36, 24:40] = 10
        folder = "normal" if index < 14 else "abnormal"
        Image.fromarray(image).save(root / folder / f"image{index:03d}.png")
    dataset = ("folder", {"normal_dir": str(root / "normal"), "abnormal_dir": str(root / "abnormal"),
                          "test_ratio": 0.3, "seed": 0})
    output = tmp_path_factory.mktemp("runs") / "run"
    train(preset("smoke", augmentation="random_swap", steps=3), dataset, output, progress=False)
    return output


@pytest.fixture(scope="module")
def detector(run_dir):
    return Detector.load(run_dir, device="cpu")


def _test_rows(run_dir):
    with open(run_dir / "scores.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_score_matches_training_scores(run_dir, detector):
    rows = _test_rows(run_dir)

    scores = detector.score([row["path"] for row in rows])

    expected = np.array([float(row["score"]) for row in rows])
    assert scores.dtype == np.float64
    assert scores.shape == (len(rows),)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)


def test_score_accepts_paths_arrays_and_batches(run_dir, detector):
    paths = [row["path"] for row in _test_rows(run_dir)][:5]
    full_size = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
    resized = np.stack([read_image(path, SIZE) for path in paths])

    from_paths = detector.score(paths)
    mixed = detector.score([paths[0], full_size[1], paths[2], full_size[3], resized[4]])
    from_array = detector.score(resized, batch_size=2)

    np.testing.assert_allclose(mixed, from_paths, rtol=1e-4)
    np.testing.assert_allclose(from_array, from_paths, rtol=1e-4)


def test_score_accepts_grayscale_and_single_path(run_dir, detector):
    path = _test_rows(run_dir)[0]["path"]
    gray = np.asarray(Image.open(path).convert("L"))

    single = detector.score(path)
    from_gray = detector.score([gray, gray[:, :, None]])

    assert single.shape == (1,)
    np.testing.assert_allclose(from_gray, [single[0], single[0]], rtol=1e-4)


def test_score_of_no_images_is_empty(detector):
    assert detector.score([]).shape == (0,)
    assert detector.heatmap([]).shape == (0, SIZE, SIZE)


@pytest.mark.parametrize("name", ["f1", "train_quantile"])
def test_predict_uses_saved_threshold(run_dir, detector, name):
    saved = json.loads((run_dir / METRICS_FILE).read_text())["thresholds"][name]
    paths = [row["path"] for row in _test_rows(run_dir)]

    prediction = detector.predict(paths, threshold=name)

    assert prediction.threshold == pytest.approx(saved)
    np.testing.assert_array_equal(prediction.anomalous, prediction.scores > saved)


def test_predict_with_number_threshold(run_dir, detector):
    paths = [row["path"] for row in _test_rows(run_dir)]
    scores = detector.score(paths)
    middle = float(np.median(scores))

    prediction = detector.predict(paths, threshold=middle)

    assert prediction.threshold == middle
    assert prediction.anomalous.sum() == (scores > middle).sum()


@pytest.mark.parametrize("threshold", ["median", float("nan")])
def test_predict_rejects_bad_threshold(detector, threshold):
    with pytest.raises(ValueError, match="threshold"):
        detector.predict([np.zeros((SIZE, SIZE, 3), np.uint8)], threshold=threshold)


BAD_IMAGES = [
    ([np.zeros((SIZE, SIZE, 3), np.float32)], TypeError, "dtype float32"),
    (np.zeros((SIZE, SIZE, 3), np.uint8), ValueError, "wrap a single"),
    ([np.zeros((SIZE, SIZE, 5), np.uint8)], ValueError, r"shape \(64, 64, 5\)"),
    ([42], TypeError, "int"),
    (["does/not/exist.png"], ImageReadError, "does/not/exist.png"),
]


@pytest.mark.parametrize(("images", "error", "message"), BAD_IMAGES)
def test_score_rejects_bad_images(detector, images, error, message):
    with pytest.raises(error, match=message):
        detector.score(images)


def test_score_error_names_global_position(detector):
    images = [np.zeros((SIZE, SIZE, 3), np.uint8)] * 3 + [np.zeros((SIZE, SIZE, 3), np.int16)]

    with pytest.raises(TypeError, match="image 3 has dtype int16"):
        detector.score(images, batch_size=2)


@pytest.mark.parametrize("batch_size", [0, -1])
def test_score_rejects_bad_batch_size(detector, batch_size):
    with pytest.raises(ValueError, match=f"batch_size must be at least 1, got {batch_size}"):
        detector.score([np.zeros((SIZE, SIZE, 3), np.uint8)], batch_size=batch_size)


def test_heatmap_is_scaled_to_unit_range(run_dir, detector):
    paths = [row["path"] for row in _test_rows(run_dir)]

    maps = detector.heatmap(paths)
    raw = detector.heatmap(paths, raw=True)

    assert maps.shape == (len(paths), SIZE, SIZE)
    assert maps.dtype == np.float32
    assert maps.min() >= 0.0
    assert maps.max() <= 1.0
    assert raw.min() >= 0.0
    assert raw.max() > maps.max()


def test_heatmap_finds_synthetic_defect(detector):
    rng = np.random.default_rng(1)
    images = []
    masks = []
    for _ in range(6):
        image = read_image_like(_texture(rng)).copy()
        top, left = rng.integers(4, SIZE - 20, size=2)
        image[top:top + 14, left:left + 14] = 10
        mask = np.zeros((SIZE, SIZE), bool)
        mask[top:top + 14, left:left + 14] = True
        images.append(image)
        masks.append(mask)

    maps = detector.heatmap(np.stack(images), raw=True)

    assert roc_auc_score(np.stack(masks).ravel(), maps.ravel()) > 0.9


def read_image_like(gray):
    """Resize a (72, 72) texture to the run's size as RGB, as the training images were."""
    return np.asarray(Image.fromarray(gray).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR))


def test_saved_localization_is_used(run_dir, detector, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoint.pt", "saliency"))
    gaussian = detector.localization
    gaussian_shifted = type(gaussian)(gaussian.stages, gaussian.mean, gaussian.precision, gaussian.low + 1.0,
                                      gaussian.high + 1.0)
    save_localization(copy, gaussian_shifted)

    loaded = Detector.load(copy, device="cpu")

    assert (copy / LOCALIZATION_FILE).is_file()
    assert loaded.localization.low == pytest.approx(gaussian.low + 1.0)
    np.testing.assert_allclose(loaded.localization.precision, gaussian.precision)


def _remove(path):
    path.unlink()


def _set_format_version(path):
    values = json.loads(path.read_text())
    values["format_version"] = 99
    path.write_text(json.dumps(values))


# (what is changed, how, the expected error, a pattern the message must contain)
BAD_RUNS = [
    ("", shutil.rmtree, FileNotFoundError, "run directory .* not found"),
    (CONFIG_FILE, _remove, FileNotFoundError, "config.json not found"),
    (MODEL_FILE, _remove, FileNotFoundError, r"model.pt not found; finish the run with .*--resume"),
    (DENSITY_FILE, _remove, FileNotFoundError, r"density.pt not found; finish the run with .*--resume"),
    (METRICS_FILE, _remove, FileNotFoundError, r"metrics.json not found; finish the run with .*--resume"),
    (CONFIG_FILE, _set_format_version, ValueError, "run format 99"),
]


@pytest.mark.parametrize(("name", "change", "error", "message"), BAD_RUNS)
def test_load_rejects_bad_run(run_dir, tmp_path, name, change, error, message):
    copy = tmp_path / "run"
    copy.mkdir()
    for file_name in (CONFIG_FILE, MODEL_FILE, DENSITY_FILE, METRICS_FILE):
        (copy / file_name).symlink_to(run_dir / file_name)
    if name == CONFIG_FILE and change is _set_format_version:
        (copy / name).unlink()
        shutil.copy(run_dir / name, copy / name)

    change(copy / name if name else copy)

    with pytest.raises(error, match=message):
        Detector.load(copy, device="cpu")


def test_load_rejects_other_backbone(run_dir):
    with pytest.raises(ValueError, match="trained with backbone efficientnet_lite0, but resnet18 was"):
        Detector.load(run_dir, device="cpu", backbone="resnet18")


def test_load_accepts_matching_backbone(run_dir):
    assert Detector.load(run_dir, device="cpu", backbone="efficientnet_lite0").image_size == SIZE


def test_load_rejects_damaged_model(run_dir, tmp_path):
    copy = tmp_path / "run"
    copy.mkdir()
    for file_name in (CONFIG_FILE, DENSITY_FILE, METRICS_FILE):
        (copy / file_name).symlink_to(run_dir / file_name)
    (copy / MODEL_FILE).write_bytes(b"not a tensor file")

    with pytest.raises(ValueError, match="model.pt could not be read"):
        Detector.load(copy, device="cpu")


def test_heatmap_without_training_images(run_dir, tmp_path):
    copy = tmp_path / "run"
    copy.mkdir()
    for file_name in (MODEL_FILE, DENSITY_FILE, METRICS_FILE):
        (copy / file_name).symlink_to(run_dir / file_name)
    config = json.loads((run_dir / CONFIG_FILE).read_text())
    config["dataset"]["options"]["normal_dir"] = str(tmp_path / "moved")
    (copy / CONFIG_FILE).write_text(json.dumps(config))
    detector = Detector.load(copy, device="cpu")
    paths = [row["path"] for row in _test_rows(run_dir)]

    with pytest.raises(ValueError, match=r"call Detector.fit_localization\(normal_images\) first"):
        detector.heatmap(paths[:1])
    gaussian = detector.fit_localization(paths)
    maps = detector.heatmap(paths[:2])

    assert detector.localization is gaussian
    assert maps.shape == (2, SIZE, SIZE)
