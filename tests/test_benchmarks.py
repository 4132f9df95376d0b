import json
import sys
from pathlib import Path

import pytest
import torch

from cutswap.config import preset
from cutswap.pipeline import NegativeDataset

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_accuracy  # noqa: E402
import bench_dataloader  # noqa: E402
import run_all  # noqa: E402
from common import (  # noqa: E402
    begin_marker,
    end_marker,
    fit_scaling,
    markdown_table,
    mean_std,
    replace_generated,
    update_document,
)

DOCUMENT = f"""# Title

Hand-written intro.

{begin_marker("accuracy")}
old table
{end_marker("accuracy")}

Prose between sections.

{begin_marker("speed")}
{end_marker("speed")}

Closing prose.
"""


def test_replace_generated_swaps_body():
    text = replace_generated(DOCUMENT, "accuracy", "| new | table |")

    assert "old table" not in text
    assert f"{begin_marker('accuracy')}\n| new | table |\n{end_marker('accuracy')}" in text


def test_replace_generated_keeps_prose():
    text = replace_generated(DOCUMENT, "accuracy", "new")

    for prose in ("# Title", "Hand-written intro.", "Prose between sections.", "Closing prose."):
        assert prose in text
    assert text.replace(f"{begin_marker('accuracy')}\nnew\n", "") == DOCUMENT.replace(
        f"{begin_marker('accuracy')}\nold table\n", ""
    )


def test_replace_generated_is_idempotent():
    once = replace_generated(DOCUMENT, "speed", "\n\nfast\n\n")
    twice = replace_generated(once, "speed", "fast")

    assert once == twice
    assert twice.count("fast") == 1


def test_replace_generated_empty_content():
    text = replace_generated(DOCUMENT, "accuracy", "")

    assert f"{begin_marker('accuracy')}\n{end_marker('accuracy')}" in text


def test_replace_generated_missing_marker():
    with pytest.raises(ValueError, match="missing") as error:
        replace_generated(DOCUMENT, "dataloader", "x")

    assert begin_marker("dataloader") in str(error.value)


def test_replace_generated_missing_end_marker():
    text = DOCUMENT.replace(end_marker("speed"), "")

    with pytest.raises(ValueError, match="END GENERATED: speed"):
        replace_generated(text, "speed", "x")


def test_replace_generated_duplicate_marker():
    text = DOCUMENT + begin_marker("speed") + "\n"

    with pytest.raises(ValueError, match="2 times"):
        replace_generated(text, "speed", "x")


def test_replace_generated_reversed_markers():
    text = f"{end_marker('speed')}\nbody\n{begin_marker('speed')}\n"

    with pytest.raises(ValueError, match="before"):
        replace_generated(text, "speed", "x")


def test_update_document_missing_marker_leaves_file(tmp_path):
    path = tmp_path / "benchmarks.md"
    path.write_text(DOCUMENT, encoding="utf-8")

    with pytest.raises(ValueError, match="missing"):
        update_document(path, {"accuracy": "new", "absent": "x"})

    assert path.read_text(encoding="utf-8") == DOCUMENT


def test_update_document_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="--doc"):
        update_document(tmp_path / "absent.md", {"accuracy": "x"})


def test_docs_page_has_every_marker():
    text = (BENCHMARKS.parent / "docs" / "benchmarks.md").read_text(encoding="utf-8")

    for name in (*run_all.SECTIONS, "accuracy-quick", "environment"):
        assert text.count(begin_marker(name)) == 1, name
        assert text.count(end_marker(name)) == 1, name


def test_mean_std_several_values():
    assert mean_std([0.9, 0.8]) == "0.850 ± 0.071"
    assert mean_std([0.5, 0.5, 0.5]) == "0.500 ± 0.000"
    assert mean_std([1.0, 2.0], digits=1) == "1.5 ± 0.7"


def test_mean_std_one_value():
    assert mean_std([0.9123]) == "0.912"


def test_mean_std_no_values():
    assert mean_std([]) == "n/a"
    assert mean_std([None, float("nan")]) == "n/a"


def test_mean_std_skips_missing():
    assert mean_std([0.9, None, 0.8]) == "0.850 ± 0.071"


def test_markdown_table_layout():
    table = markdown_table(["a", "b"], [[1, "x"]], align="lr")

    assert table.splitlines() == ["| a | b |", "| --- | ---: |", "| 1 | x |"]


def test_markdown_table_row_length():
    with pytest.raises(ValueError, match="2 columns"):
        markdown_table(["a", "b"], [[1]])


def test_fit_scaling_linear_growth():
    pixels = [128**2, 256**2, 512**2, 1024**2]
    fit = fit_scaling(pixels, [2e-9 * count + 1e-6 for count in pixels])

    assert fit["slope"] == pytest.approx(1.0, abs=0.05)
    assert fit["linear_r2"] == pytest.approx(1.0)
    assert fit["per_pixel_ns"] == pytest.approx(2.0)


def test_fit_scaling_quadratic_growth():
    pixels = [1e4, 4e4, 1.6e5, 6.4e5]
    fit = fit_scaling(pixels, [1e-12 * count**2 for count in pixels])

    assert fit["slope"] == pytest.approx(2.0)
    assert fit["log_r2"] == pytest.approx(1.0)
    assert fit["linear_r2"] < 0.99


def test_fit_scaling_rejects_one_point():
    with pytest.raises(ValueError, match="at least two"):
        fit_scaling([100], [1.0])


def _metrics(auroc):
    return {
        "image_auroc": auroc,
        "per_group": {"mono": {"image_auroc": auroc + 0.05}, "poly": {"image_auroc": auroc - 0.05}},
        "timings": {"train_s": 10.0, "total_s": 20.0},
    }


def test_run_state_values(tmp_path):
    assert bench_accuracy.run_state(tmp_path / "absent") == "new"
    (tmp_path / "config.json").write_text("{}")
    assert bench_accuracy.run_state(tmp_path) == "unfinished"
    (tmp_path / "metrics.json").write_text("{}")
    assert bench_accuracy.run_state(tmp_path) == "finished"


def test_run_one_skips_finished_run(tmp_path, monkeypatch):
    directory = bench_accuracy.run_directory(tmp_path, 64, 2, "cutswap", 0)
    directory.mkdir(parents=True)
    (directory / "metrics.json").write_text(json.dumps(_metrics(0.8)))

    def fail(*args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr("cutswap.train.train", fail)
    metrics = bench_accuracy.run_one(tmp_path, "cutswap", 0, 64, 2, device="cpu", progress=False)

    assert metrics["image_auroc"] == 0.8


def test_run_one_resumes_unfinished_run(tmp_path, monkeypatch):
    directory = bench_accuracy.run_directory(tmp_path, 64, 2, "cutswap_k5", 1)
    directory.mkdir(parents=True)
    (directory / "config.json").write_text("{}")
    calls = []

    def record(config, dataset, output, **options):
        calls.append((config, dataset, output, options))
        return _metrics(0.7)

    monkeypatch.setattr("cutswap.train.train", record)
    bench_accuracy.run_one(tmp_path, "cutswap_k5", 1, 64, 2, device="cpu", progress=False)

    config, dataset, output, options = calls[0]
    assert output == directory
    assert options["resume"] is True
    assert options["saliency_cache_dir"] == tmp_path / "saliency"
    assert dataset == ("elpv", {"variant": "literature"})
    assert (config.augmentation, config.k, config.seed) == ("cutswap", 5, 1)
    assert (config.image_size, config.steps) == (64, 2)


def test_run_one_starts_new_run(tmp_path, monkeypatch):
    calls = []

    def record(*args, **options):
        calls.append(options)
        return _metrics(0.6)

    monkeypatch.setattr("cutswap.train.train", record)

    bench_accuracy.run_one(tmp_path, "cutswap_1level", 0, 64, 2, device="cpu", progress=False)

    assert calls[0]["resume"] is False


def test_run_directories_separate_settings(tmp_path):
    quick = bench_accuracy.run_directory(tmp_path, 128, 40, "cutswap", 0)
    full = bench_accuracy.run_directory(tmp_path, 224, 150, "cutswap", 0)

    assert quick != full


def test_accuracy_table_rows():
    rows = bench_accuracy.summarize({"none": [_metrics(0.8), _metrics(0.9)], "cutswap": [_metrics(0.85)]})
    table = bench_accuracy.format_table(rows)
    lines = table.splitlines()

    assert "0.850 ± 0.071" in lines[2]
    assert "0.900 ± 0.071" in lines[2]
    assert lines[3].startswith("| CutSwap, all levels, k=3 | 0.850 |")
    assert "| PatchCore (published, not run here) | 0.916 |" in table
    assert "| KDAD (published, not run here) | 0.744 |" in table


def test_quick_settings_labelled():
    args = bench_accuracy.build_parser().parse_args(["--quick"])
    image_size, steps, seeds = bench_accuracy.resolve_settings(args)

    assert (image_size, steps, seeds) == (128, 40, [0])
    assert "QUICK" in bench_accuracy.describe_settings(image_size, steps, seeds, quick=True)
    assert "custom" in bench_accuracy.describe_settings(64, 2, [0], quick=False)


def _fake_results(directory):
    results = directory / "results"
    results.mkdir(parents=True)
    hardware = {"cpu": "Test CPU", "cores": 2, "gpu": None, "torch": "2.0", "python": "3.11"}
    data = {
        "augment": {
            "comparison": {"size": 256, "levels": 4, "k": 3, "rust_images_per_second": 1000.0,
                           "reference_images_per_second": 10.0, "speedup": 100.0,
                           "rust_microseconds_per_level": 250.0},
            "scaling": [
                {"side": side, "k": k, "kmeans_us": side * side * 1e-3, "total_us": side * side * 2e-3}
                for side in (128, 256) for k in (2, 3)
            ],
        },
        "saliency": {"backbone": "efficientnet_lite0", "layers": ["bn2", "blocks.4"], "batch_size": 2,
                     "size": 64, "device": "cpu", "threads": 1, "repeats": 1, "speedup": 3.0,
                     "rows": [{"method": "ours", "seconds_per_batch": 0.1, "images_per_second": 20.0}]},
        "dataloader": {"count": 32, "size": 64, "levels": 4, "k": 3, "batch_size": 16, "epochs": 1,
                       "goal": 0.1, "hardware": hardware,
                       "rows": [{"num_workers": 0, "weak_images_per_second": 100.0,
                                 "cutswap_images_per_second": 95.0, "cutswap_output_images_per_second": 475.0,
                                 "copies_images_per_second": 97.0, "cost": 0.05, "copies_cost": 0.03,
                                 "goal_met": True}]},
        "training": {"hardware": hardware,
                     "step": {"backbone": "efficientnet_lite0", "image_size": 64, "batch_size": 2,
                              "levels": 4, "images_per_step": 10, "median_s": 0.5, "images_per_second": 20.0,
                              "default_steps": 150, "repeats": 1, "warmup": 0, "device": "cpu",
                              "threads": 1}},
        "accuracy": {"hardware": hardware, "settings": "QUICK protocol, test",
                     "rows": bench_accuracy.summarize({"none": [_metrics(0.8)]})},
    }
    for name, value in data.items():
        (results / f"{name}.json").write_text(json.dumps(value))
    (results / "accuracy.meta.json").write_text(json.dumps({"command": "python benchmarks/run_all.py --quick",
                                                            "mode": "quick"}))


def test_run_all_reuse_rewrites_document(tmp_path):
    _fake_results(tmp_path)
    doc = tmp_path / "benchmarks.md"
    original = (BENCHMARKS.parent / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    doc.write_text(original, encoding="utf-8")

    status = run_all.main(["--reuse", "--work-dir", str(tmp_path), "--doc", str(doc)])
    text = doc.read_text(encoding="utf-8")

    assert status == 0
    assert "| 0 | 100 | 95 | 475 | 97 | 3 % | 5 % | yes |" in text
    assert "Test CPU, 2 cores" in text
    assert "`python benchmarks/run_all.py --quick`" in text
    assert "QUICK protocol: one seed per method" in text
    assert "| k=2 | 33 | 131 | 1.00 |" in text
    assert "| PatchCore (published, not run here) | 0.916 |" in text
    # Hand-written lines sit outside the generated sections; those inside are replaced.
    inside = False
    for line in original.splitlines():
        if line.startswith("<!-- BEGIN GENERATED"):
            inside = True
        elif line.startswith("<!-- END GENERATED"):
            inside = False
        elif not inside:
            assert line in text


def test_run_all_quick_accuracy_keeps_full_table(tmp_path):
    _fake_results(tmp_path)
    results = tmp_path / "results"
    quick = {"hardware": {"cpu": "Quick CPU", "cores": 2, "gpu": None, "torch": "2.0", "python": "3.11"},
             "settings": "QUICK protocol, one seed per method, test",
             "rows": bench_accuracy.summarize({"none": [_metrics(0.7)]})}
    (results / "accuracy-quick.json").write_text(json.dumps(quick))
    doc = tmp_path / "benchmarks.md"
    original = (BENCHMARKS.parent / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    doc.write_text(original, encoding="utf-8")

    status = run_all.main(["--quick", "--reuse", "--only", "accuracy", "--work-dir", str(tmp_path),
                           "--doc", str(doc)])
    text = doc.read_text(encoding="utf-8")

    assert status == 0
    full_section = text.split(begin_marker("accuracy"))[1].split(end_marker("accuracy"))[0]
    quick_section = text.split(begin_marker("accuracy-quick"))[1].split(end_marker("accuracy-quick"))[0]
    assert full_section == original.split(begin_marker("accuracy"))[1].split(end_marker("accuracy"))[0]
    assert "Quick CPU" in quick_section
    assert "| 0.700 |" in quick_section


def test_run_all_quick_accuracy_own_section(tmp_path, monkeypatch):
    doc = tmp_path / "benchmarks.md"
    original = (BENCHMARKS.parent / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    doc.write_text(original, encoding="utf-8")
    calls = []

    def fake_run(arguments):
        calls.append(arguments)
        json_path = Path(arguments[arguments.index("--json") + 1])
        rows = bench_accuracy.summarize({"none": [_metrics(0.6)]})
        settings = "QUICK protocol, one seed per method, test"
        json_path.write_text(json.dumps({"settings": settings, "rows": rows}))
        return 1.0

    monkeypatch.setattr(run_all, "run_benchmark", fake_run)
    status = run_all.main(["--quick", "--only", "accuracy", "--work-dir", str(tmp_path), "--doc", str(doc)])

    assert status == 0
    assert calls[0][0] == "bench_accuracy.py"
    assert "--quick" in calls[0]
    assert (tmp_path / "results" / "accuracy-quick.json").is_file()
    assert not (tmp_path / "results" / "accuracy.json").exists()
    quick_section = doc.read_text(encoding="utf-8").split(begin_marker("accuracy-quick"))[1]
    assert "| 0.600 |" in quick_section.split(end_marker("accuracy-quick"))[0]


def test_bench_dataloader_measures_all_pipelines():
    result = bench_dataloader.measure(count=8, size=32, levels=2, k=2, batch_size=4, workers=[0], epochs=1)
    row = result["rows"][0]

    for key in ("weak_images_per_second", "cutswap_images_per_second", "copies_images_per_second"):
        assert row[key] > 0
    assert row["cost"] == pytest.approx(1 - row["cutswap_images_per_second"] / row["weak_images_per_second"])


def test_copies_pipeline_returns_cutswap_shapes():
    images, maps = bench_dataloader.synthetic_dataset(2, 32, 3)
    config = preset("cpu", augmentation="cutswap", image_size=32)
    copies = bench_dataloader.CopiesDataset(images, maps, config)
    negatives = NegativeDataset(images, maps, config, flips=True)

    copy_images, copy_labels = copies[1]
    cutswap_images, cutswap_labels = negatives[1]

    assert copy_images.shape == cutswap_images.shape
    assert torch.equal(copy_labels, cutswap_labels)
    # The same seeds give the same weak view, and the copies leave it unchanged.
    assert torch.equal(copy_images[0], cutswap_images[0])
    assert all(torch.equal(image, copy_images[0]) for image in copy_images[1:])


def test_run_all_missing_document(tmp_path):
    with pytest.raises(SystemExit, match="not found"):
        run_all.main(["--reuse", "--work-dir", str(tmp_path), "--doc", str(tmp_path / "absent.md")])
