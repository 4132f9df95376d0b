import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from cutswap import Detector
from cutswap.config import preset
from cutswap.predict import main
from cutswap.train import train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("data")
    for folder in ("normal", "abnormal", "queries/nested"):
        (root / folder).mkdir(parents=True)
    for index in range(20):
        stripes = (np.sin(np.arange(72) / 3.0) * 60 + 128)[None, :].repeat(72, 0)
        image = np.clip(stripes + rng.normal(0, 10, (72, 72)), 0, 255).astype(np.uint8)
        if index >= 14:
            image[20:36, 24:40] = 10
        folder = "normal" if index < 14 else "abnormal"
        Image.fromarray(image).save(root / folder / f"image{index:03d}.png")
        if index in (3, 15):
            Image.fromarray(image).save(root / "queries" / f"query{index:03d}.png")
        if index == 16:
            Image.fromarray(image).save(root / "queries" / "nested" / f"query{index:03d}.png")
    (root / "queries" / "broken.png").write_bytes(b"not an image")
    (root / "queries" / "notes.txt").write_text("not an image either")
    dataset = ("folder", {"normal_dir": str(root / "normal"), "abnormal_dir": str(root / "abnormal"),
                          "test_ratio": 0.3, "seed": 0})
    output = tmp_path_factory.mktemp("runs") / "run"
    train(preset("smoke", augmentation="random_swap", steps=3), dataset, output, progress=False)
    return output, root / "queries"


def test_predict_json_to_stdout(run, capsys):
    run_dir, queries = run
    paths = [str(queries / "query003.png"), str(queries / "query015.png")]

    status = main([str(run_dir), *paths, "--device", "cpu"])

    rows = json.loads(capsys.readouterr().out)
    assert status == 0
    assert [row["path"] for row in rows] == paths
    expected = Detector.load(run_dir, device="cpu").predict(paths, threshold="f1")
    np.testing.assert_allclose([row["score"] for row in rows], expected.scores, rtol=1e-4)
    assert [row["anomalous"] for row in rows] == expected.anomalous.tolist()
    assert all(row["error"] is None for row in rows)


def test_predict_reports_unreadable_image(run, tmp_path, caplog):
    run_dir, queries = run
    output = tmp_path / "scores.json"

    status = main([str(run_dir), str(queries), "--output", str(output), "--device", "cpu",
                   "--batch-size", "2"])

    rows = {row["path"]: row for row in json.loads(output.read_text())}
    assert status == 1
    assert sorted(rows) == sorted(str(queries / name) for name in (
        "broken.png", "query003.png", "query015.png", "nested/query016.png"))
    broken = rows[str(queries / "broken.png")]
    assert broken["score"] is None
    assert broken["anomalous"] is None
    assert "not a readable image" in broken["error"]
    assert all(isinstance(row["score"], float) for path, row in rows.items() if "broken" not in path)
    assert "broken.png" in caplog.text


def test_predict_csv_with_missing_file(run, tmp_path, capsys):
    run_dir, queries = run
    missing = str(tmp_path / "missing.png")

    status = main([str(run_dir), str(queries / "query003.png"), missing, "--format", "csv",
                   "--threshold", "train_quantile", "--device", "cpu"])

    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert status == 1
    assert list(rows[0]) == ["path", "score", "anomalous", "error"]
    assert rows[0]["error"] == ""
    assert float(rows[0]["score"]) > 0
    assert rows[0]["anomalous"] in ("true", "false")
    assert rows[1]["path"] == missing
    assert rows[1]["score"] == ""
    assert rows[1]["error"] == "file not found"


@pytest.mark.parametrize(("threshold", "expected"), [("-1e9", True), ("1e9", False)])
def test_predict_number_threshold(run, capsys, threshold, expected):
    run_dir, queries = run

    # The `=` form lets argparse take a negative number as the value rather than as an option.
    status = main([str(run_dir), str(queries / "query003.png"), f"--threshold={threshold}",
                   "--device", "cpu"])

    rows = json.loads(capsys.readouterr().out)
    assert status == 0
    assert rows[0]["anomalous"] is expected


def test_predict_rejects_bad_threshold_name(run, capsys):
    run_dir, queries = run

    with pytest.raises(SystemExit) as exit_info:
        main([str(run_dir), str(queries / "query003.png"), "--threshold", "median"])

    assert exit_info.value.code == 2
    assert "invalid threshold 'median'" in capsys.readouterr().err


def test_predict_writes_heatmaps(run, tmp_path, capsys):
    run_dir, queries = run
    heatmaps = tmp_path / "heatmaps"

    status = main([str(run_dir), str(queries / "query003.png"), str(queries / "query015.png"),
                   "--heatmaps", str(heatmaps), "--device", "cpu"])

    assert status == 0
    written = sorted(path.name for path in heatmaps.iterdir())
    assert written == ["query003.png", "query015.png"]
    with Image.open(heatmaps / "query015.png") as overlay:
        assert overlay.size == (64, 64)
        assert overlay.mode == "RGB"


def test_predict_incomplete_run_fails(run, tmp_path, caplog):
    _, queries = run
    run_dir = tmp_path / "run"
    run_dir.mkdir()

    status = main([str(run_dir), str(queries / "query003.png"), "--device", "cpu"])

    assert status == 2
    assert "config.json not found" in caplog.text


def test_predict_other_backbone_fails(run, caplog):
    run_dir, queries = run

    status = main([str(run_dir), str(queries / "query003.png"), "--backbone", "resnet18", "--device", "cpu"])

    assert status == 2
    assert "trained with backbone efficientnet_lite0, but resnet18 was requested" in caplog.text
