import json

import numpy as np
import pytest
import torch
from PIL import Image

import cutswap.train as train_module
from cutswap.config import TrainConfig, preset
from cutswap.runs import CHECKPOINT_FILE, CONFIG_FILE, DENSITY_FILE, LOG_FILE, METRICS_FILE, MODEL_FILE
from cutswap.train import main, train


def _write_folder(root, normal=14, abnormal=6, size=72):
    rng = np.random.default_rng(0)
    normal_dir = root / "normal"
    abnormal_dir = root / "abnormal"
    normal_dir.mkdir(parents=True)
    abnormal_dir.mkdir(parents=True)
    for index in range(normal + abnormal):
        # A striped texture with noise, like a repetitive industrial surface.
        stripes = (np.sin(np.arange(size) / 3.0) * 60 + 128)[None, :].repeat(size, 0)
        image = np.clip(stripes + rng.normal(0, 10, (size, size)), 0, 255).astype(np.uint8)
        if index >= normal:
            top, left = rng.integers(8, size - 24, size=2)
            image[top : top + 16, left : left + 16] = 10
        target = normal_dir if index < normal else abnormal_dir
        Image.fromarray(image).save(target / f"image{index:03d}.png")
    return normal_dir, abnormal_dir


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    normal_dir, abnormal_dir = _write_folder(root)
    return (
        "folder",
        {"normal_dir": str(normal_dir), "abnormal_dir": str(abnormal_dir), "test_ratio": 0.3, "seed": 0},
    )


def _smoke(**overrides):
    values = {"image_size": 64, "steps": 3, "batch_size": 4, "num_workers": 0}
    values.update(overrides)
    return preset("smoke", **values)


@pytest.fixture(scope="module")
def cutswap_run(tmp_path_factory, folder):
    output = tmp_path_factory.mktemp("runs") / "cutswap"
    metrics = train(_smoke(), folder, output, progress=False)
    return output, metrics


def test_run_directory_is_complete(cutswap_run):
    output, metrics = cutswap_run

    for name in (
        CONFIG_FILE,
        CHECKPOINT_FILE,
        MODEL_FILE,
        DENSITY_FILE,
        METRICS_FILE,
        "train.log",
        "roc.png",
        "scores.png",
        "negatives.png",
        "scores.csv",
        "localization.pt",
    ):
        assert (output / name).is_file(), name
    saved = json.loads((output / METRICS_FILE).read_text())
    assert saved["image_auroc"] == pytest.approx(metrics["image_auroc"])
    assert 0.0 <= saved["image_auroc"] <= 1.0
    assert {"f1", "train_quantile"} <= set(saved["thresholds"])
    assert saved["num_train"] + saved["num_test"] == 20


def test_checkpoints_load_without_pickle(cutswap_run):
    output, _ = cutswap_run

    for name in (CHECKPOINT_FILE, MODEL_FILE, DENSITY_FILE):
        state = torch.load(output / name, weights_only=True)
        assert isinstance(state, dict)


def test_saliency_cache_is_written(cutswap_run):
    output, _ = cutswap_run

    caches = list((output / "saliency").glob("*.npy"))

    assert len(caches) == 1
    maps = np.load(caches[0], mmap_mode="r")
    assert maps.shape[1:] == (4, 64, 64)
    assert maps.dtype == np.uint8


def test_existing_run_is_not_overwritten(cutswap_run, folder):
    output, _ = cutswap_run
    before = (output / METRICS_FILE).read_bytes()

    with pytest.raises(FileExistsError, match="already contains a finished run; pass --overwrite"):
        train(_smoke(), folder, output, progress=False)

    assert (output / METRICS_FILE).read_bytes() == before


def test_overwrite_refuses_foreign_directory(tmp_path, folder):
    (tmp_path / "notes.txt").write_text("keep me")

    with pytest.raises(FileExistsError, match="contains no cutswap run"):
        train(_smoke(), folder, tmp_path, overwrite=True, progress=False)

    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_resume_finishes_interrupted_run(tmp_path, folder):
    config = _smoke(augmentation="random_swap", steps=6, batch_size=4)
    uninterrupted = train(config, folder, tmp_path / "whole", progress=False)

    # Stop after the first epoch's checkpoint: with 9 training images and batch 4 an epoch is 2 steps.
    partial = tmp_path / "partial"
    short = _smoke(augmentation="random_swap", steps=2, batch_size=4)
    train(short, folder, partial, progress=False)
    (partial / METRICS_FILE).unlink()
    saved = json.loads((partial / CONFIG_FILE).read_text())
    saved["train"]["steps"] = 6
    (partial / CONFIG_FILE).write_text(json.dumps(saved))

    resumed = train(short, folder, partial, resume=True, progress=False)

    state = torch.load(partial / CHECKPOINT_FILE, weights_only=True)
    assert state["step"] == 6
    assert resumed["image_auroc"] == pytest.approx(uninterrupted["image_auroc"], abs=1e-6)


def test_interrupt_is_logged_in_run_directory(tmp_path, folder, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_run", interrupted)
    output = tmp_path / "run"

    with pytest.raises(KeyboardInterrupt):
        train(_smoke(), folder, output, progress=False)

    log = (output / LOG_FILE).read_text(encoding="utf-8")
    assert f"interrupted; finish the run with: python -m cutswap.train --output {output} --resume" in log
    assert "Traceback" not in log


def test_bad_dataset_leaves_no_run_directory(tmp_path):
    output = tmp_path / "run"
    missing = ("folder", {"normal_dir": str(tmp_path / "missing")})

    with pytest.raises(FileNotFoundError, match="missing"):
        train(_smoke(), missing, output, progress=False)

    assert not output.exists()


def test_failed_run_logs_traceback_to_file_only(tmp_path, folder, capsys):
    output = tmp_path / "run"

    with pytest.raises(ValueError, match="batch_size 64 is larger"):
        train(_smoke(augmentation="random_swap", batch_size=64), folder, output, progress=False)

    assert "Traceback" in (output / "train.log").read_text()
    assert "Traceback" not in capsys.readouterr().err


def test_resume_needs_existing_run(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(_smoke(), folder, tmp_path / "missing", resume=True, progress=False)


@pytest.mark.parametrize("augmentation", ["none", "cutpaste_3way"])
def test_other_augmentations_run(tmp_path, folder, augmentation):
    metrics = train(_smoke(augmentation=augmentation), folder, tmp_path / augmentation, progress=False)

    assert metrics["augmentation"] == augmentation
    assert np.isfinite(metrics["image_auroc"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"augmentation": "mixup"}, "augmentation must be one of"),
        ({"head": "triple"}, "head must be one of"),
        ({"k": 0}, "k must be between 1 and 256"),
        ({"area": (0.3, 0.1)}, "area must be an increasing pair"),
        ({"aspect": (0.0, 1.0)}, "aspect must be an increasing pair"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"image_size": 8}, "image_size must be between 32 and 1024"),
        ({"image_size": 100000}, "image_size must be between 32 and 1024"),
        ({"steps": 0}, "steps is 0, so augmentation 'cutswap' would train nothing"),
        ({"device": "tpu"}, "device must be auto, cpu, cuda"),
        ({"steps": -1}, "steps must be 0 or more"),
    ],
)
def test_invalid_config(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**overrides).validate()


def test_untrained_baseline_accepts_zero_steps():
    TrainConfig(augmentation="none", steps=0).validate()


def test_output_that_is_a_file_is_rejected(tmp_path, folder):
    output = tmp_path / "afile"
    output.write_text("keep me")

    with pytest.raises(FileExistsError, match="is a file, not a directory"):
        train(_smoke(), folder, output, progress=False)

    assert output.read_text() == "keep me"


def test_resume_of_finished_run_is_rejected(cutswap_run, folder):
    output, _ = cutswap_run
    before = (output / METRICS_FILE).read_bytes()

    with pytest.raises(FileExistsError, match="is already finished; re-score it with"):
        train(_smoke(), folder, output, resume=True, progress=False)

    assert (output / METRICS_FILE).read_bytes() == before


def test_unavailable_device_leaves_no_run_directory(tmp_path, folder, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    output = tmp_path / "run"

    with pytest.raises(ValueError, match="CUDA is not available; use --device cpu or auto"):
        train(_smoke(device="cuda"), folder, output, progress=False)

    assert not output.exists()


def test_resume_takes_new_device_and_workers(tmp_path, folder, monkeypatch):
    output = tmp_path / "run"
    train(_smoke(augmentation="random_swap", steps=2, batch_size=4), folder, output, progress=False)
    (output / METRICS_FILE).unlink()
    seen = {}
    original = train_module._run

    def record(config, *args, **kwargs):
        seen["config"] = config
        return original(config, *args, **kwargs)

    monkeypatch.setattr(train_module, "_run", record)
    train(_smoke(), folder, output, resume=True, progress=False, runtime={"device": "cpu", "num_workers": 1})

    assert seen["config"].device == "cpu"
    assert seen["config"].num_workers == 1
    assert seen["config"].augmentation == "random_swap"
    assert "resuming the run in" in (output / LOG_FILE).read_text(encoding="utf-8")


def test_resume_rejects_learning_settings_as_runtime(tmp_path, folder):
    with pytest.raises(ValueError, match="runtime accepts only device, num_workers, got lr"):
        train(_smoke(), folder, tmp_path / "run", resume=True, progress=False, runtime={"lr": 0.1})


def test_cli_help_shows_preset_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])

    text = " ".join(capsys.readouterr().out.split())
    assert "optimiser steps (cpu preset: 40)" in text
    assert "image side in pixels (cpu preset: 128)" in text


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        preset("fast")


def test_config_round_trip():
    config = _smoke(area=(0.05, 0.1), levels=["blocks.4"])

    assert TrainConfig.from_dict(json.loads(config.to_json())) == config


def test_cli_reports_existing_run(cutswap_run, folder, capsys):
    output, _ = cutswap_run
    options = folder[1]

    status = main(
        [
            "--dataset",
            "folder",
            "--normal-dir",
            options["normal_dir"],
            "--abnormal-dir",
            options["abnormal_dir"],
            "--preset",
            "smoke",
            "--output",
            str(output),
            "--no-progress",
        ]
    )

    assert status == 2


def test_cli_rejects_bad_option(capsys):
    with pytest.raises(SystemExit) as error:
        main(["--preset", "smoke", "--k", "0", "--output", "unused"])

    assert error.value.code == 2
    assert "k must be between 1 and 256" in capsys.readouterr().err
