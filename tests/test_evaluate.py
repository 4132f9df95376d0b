import csv
import json

import numpy as np
import pytest
from PIL import Image

from cutswap.config import preset
from cutswap.evaluate import file_prefix, main, pixel_auroc
from cutswap.train import train


def _texture(rng, size=72):
    stripes = (np.sin(np.arange(size) / 3.0) * 60 + 128)[None, :].repeat(size, 0)
    return np.clip(stripes + rng.normal(0, 10, (size, size)), 0, 255).astype(np.uint8)


def _write_mvtec(root, rng):
    """Write an MVTec AD category "stripes" with 12 training normals, 3 test normals and 4 dark squares."""
    category = root / "stripes"
    for folder in ("train/good", "test/good", "test/square", "ground_truth/square"):
        (category / folder).mkdir(parents=True)
    for index in range(12):
        Image.fromarray(_texture(rng)).save(category / "train" / "good" / f"{index:03d}.png")
    for index in range(3):
        Image.fromarray(_texture(rng)).save(category / "test" / "good" / f"{index:03d}.png")
    for index in range(4):
        image = _texture(rng)
        mask = np.zeros_like(image)
        top, left = rng.integers(4, 48, size=2)
        image[top:top + 18, left:left + 18] = 10
        mask[top:top + 18, left:left + 18] = 255
        Image.fromarray(image).save(category / "test" / "square" / f"{index:03d}.png")
        Image.fromarray(mask).save(category / "ground_truth" / "square" / f"{index:03d}_mask.png")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("mvtec")
    _write_mvtec(root, rng)
    other = tmp_path_factory.mktemp("folder")
    (other / "normal").mkdir()
    (other / "abnormal").mkdir()
    for index in range(8):
        image = _texture(rng)
        if index >= 5:
            image[10:30, 10:30] = 250
        Image.fromarray(image).save(other / ("normal" if index < 5 else "abnormal") / f"{index:03d}.png")
    output = tmp_path_factory.mktemp("runs") / "run"
    dataset = ("mvtec", {"root": str(root), "category": "stripes"})
    train(preset("smoke", augmentation="random_swap", steps=3), dataset, output, progress=False)
    return output, other


def test_evaluate_own_test_set(run, capsys):
    run_dir, _ = run

    status = main([str(run_dir), "--device", "cpu", "--no-progress"])

    printed = capsys.readouterr().out
    metrics = json.loads((run_dir / "eval-mvtec-stripes-metrics.json").read_text())
    training = json.loads((run_dir / "metrics.json").read_text())
    assert status == 0
    assert f"image AUROC {metrics['image_auroc']:.4f}" in printed
    assert metrics["image_auroc"] == pytest.approx(training["image_auroc"], abs=1e-6)
    assert metrics["thresholds"]["train_quantile"] == pytest.approx(training["thresholds"]["train_quantile"])
    assert metrics["run_thresholds"] == training["thresholds"]
    assert metrics["num_test"] == 7
    assert metrics["pixel_auroc"] > 0.9
    assert f"pixel AUROC {metrics['pixel_auroc']:.4f}" in printed
    assert (run_dir / "eval-mvtec-stripes-scores.csv").is_file()


def test_evaluate_other_dataset_keeps_run_files(run, capsys):
    run_dir, other = run
    before = (run_dir / "metrics.json").read_bytes()

    status = main([str(run_dir), "--dataset", "folder", "--normal-dir", str(other / "normal"),
                   "--abnormal-dir", str(other / "abnormal"), "--test-ratio", "0.4", "--device", "cpu",
                   "--no-progress"])

    assert status == 0
    assert (run_dir / "metrics.json").read_bytes() == before
    metrics = json.loads((run_dir / "eval-folder-normal-metrics.json").read_text())
    assert "pixel_auroc" not in metrics
    assert metrics["num_test_anomalous"] == 3
    assert metrics["dataset"]["name"] == "folder/normal"
    with open(run_dir / "eval-folder-normal-scores.csv", newline="") as file:
        assert len(list(csv.DictReader(file))) == metrics["num_test"]
    assert "image AUROC" in capsys.readouterr().out


def test_evaluate_rejects_stray_dataset_option(run, capsys):
    run_dir, _ = run

    with pytest.raises(SystemExit) as exit_info:
        main([str(run_dir), "--category", "stripes"])

    assert exit_info.value.code == 2
    assert "--category needs --dataset" in capsys.readouterr().err


@pytest.mark.parametrize("missing", ["model.pt", "density.pt", "metrics.json"])
def test_evaluate_incomplete_run_fails(run, tmp_path, caplog, missing):
    run_dir, _ = run
    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("config.json", "model.pt", "density.pt", "metrics.json"):
        if name != missing:
            (copy / name).symlink_to(run_dir / name)

    status = main([str(copy), "--device", "cpu"])

    assert status == 2
    assert f"{missing} not found" in caplog.text
    assert f"python -m cutswap.train --output {copy} --resume" in caplog.text


@pytest.mark.parametrize(("name", "prefix"), [("elpv", "eval-elpv-"), ("mvtec/bottle", "eval-mvtec-bottle-"),
                                              ("my data", "eval-my-data-")])
def test_file_prefix(name, prefix):
    assert file_prefix(name) == prefix


def test_pixel_auroc_of_one_class_is_nan():
    maps = np.random.default_rng(0).random((2, 4, 4))

    assert np.isnan(pixel_auroc(maps, np.zeros((2, 4, 4), bool)))
    assert pixel_auroc(maps, maps > 0.5) == 1.0
