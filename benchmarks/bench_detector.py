"""Measure how many images per second a saved run scores on the CPU: Detector.score, heatmaps, ONNX.

By default the script builds a run directory with the default configuration (EfficientNet-Lite0,
cutswap with four levels, trained plus frozen embeddings) from random weights and random Gaussian
statistics. It costs the same to evaluate as a trained run. Pass --run to time a real one.
The images are random uint8 arrays already at the run's size, so decoding and resizing are not
timed.

    OMP_NUM_THREADS=2 python benchmarks/bench_detector.py --json bench_detector.json
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
import torch

from common import save_results
from cutswap import Detector, __version__
from cutswap.config import TrainConfig
from cutswap.runs import (
    CONFIG_FILE,
    DENSITY_FILE,
    FORMAT_VERSION,
    METRICS_FILE,
    MODEL_FILE,
    atomic_torch_save,
    atomic_write_json,
)
from cutswap.scoring import CombinedDensity
from cutswap.train import build_networks, saliency_layers


def make_synthetic_run(directory: Path, config: TrainConfig) -> None:
    """Write a complete run directory with random network weights and Gaussians fitted to noise."""
    layers = saliency_layers(config)
    net, reference = build_networks(config, len(layers), pretrained=False)
    use_frozen = reference is not None and config.embedding == "trained+frozen"
    rng = np.random.default_rng(0)
    embeddings = {"trained": rng.normal(size=(64, net.embedding_dim))}
    if use_frozen:
        embeddings["frozen"] = rng.normal(size=(64, reference.embedding_dim))
    density = CombinedDensity.fit(embeddings)

    atomic_write_json(directory / CONFIG_FILE, {
        "format_version": FORMAT_VERSION,
        "cutswap_version": __version__,
        "train": config.to_dict(),
        "dataset": {"name": "synthetic", "options": {}},
    })
    atomic_torch_save(directory / MODEL_FILE, {
        "net": net.state_dict(),
        "reference": reference.state_dict() if use_frozen else {},
        "saliency_layers": layers,
    })
    atomic_torch_save(directory / DENSITY_FILE, density.state_dict())
    atomic_write_json(directory / METRICS_FILE, {"thresholds": {"f1": 0.0, "train_quantile": 0.0,
                                                                "train_quantile_level": 0.99}})


def images_per_second(function: Callable[[], Any], count: int, repeats: int) -> float:
    """Return the best of `repeats` timed calls, after one untimed warm-up call, as images per second."""
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="time this run directory instead of a synthetic one")
    parser.add_argument("--image-size", type=int, default=128,
                        help="image side of the synthetic run in pixels (default: 128, the cpu preset's)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    parser.add_argument("--images", type=int, default=64, help="images per timed call (default: 64)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed calls per row; the fastest counts (default: 3)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime row")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        run_dir = args.run
        if run_dir is None:
            run_dir = Path(scratch) / "run"
            run_dir.mkdir()
            make_synthetic_run(run_dir, TrainConfig(image_size=args.image_size))
        detector = Detector.load(run_dir, device="cpu", batch_size=args.batch_size)
        size = detector.image_size
        images = np.random.default_rng(1).integers(0, 256, (args.images, size, size, 3), dtype=np.uint8)
        detector.fit_localization(images[:8], max_images=8)

        rows: List[Dict[str, Any]] = []

        def record(path: str, function: Callable[[], Any]) -> None:
            rate = images_per_second(function, len(images), args.repeats)
            rows.append({"path": path, "image_size": size, "batch_size": args.batch_size,
                         "images_per_s": rate, "ms_per_image": 1000.0 / rate})

        record("Detector.score", lambda: detector.score(images))
        record("Detector.heatmap", lambda: detector.heatmap(images))
        if not args.no_onnx:
            import onnxruntime

            from cutswap.export import export_onnx

            model_path = Path(scratch) / "model.onnx"
            export_onnx(detector, model_path)
            options = onnxruntime.SessionOptions()
            # As many threads as torch uses, so the rows compare the runtimes rather than thread counts.
            options.intra_op_num_threads = torch.get_num_threads()
            session = onnxruntime.InferenceSession(str(model_path), options,
                                                   providers=["CPUExecutionProvider"])
            channels_first = np.ascontiguousarray(images.transpose(0, 3, 1, 2))

            def run_onnx() -> None:
                for start in range(0, len(channels_first), args.batch_size):
                    session.run(None, {"images": channels_first[start:start + args.batch_size]})

            record("onnxruntime", run_onnx)

    environment = {
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "load_average_1min": os.getloadavg()[0],
        "run": str(args.run) if args.run else f"synthetic default configuration, {size} px",
    }
    print(f"{'path':<18} {'size':>5} {'batch':>6} {'images/s':>10} {'ms/image':>10}")
    for row in rows:
        print(f"{row['path']:<18} {row['image_size']:>5} {row['batch_size']:>6} "
              f"{row['images_per_s']:>10.1f} {row['ms_per_image']:>10.1f}")
    print(f"torch threads {environment['torch_threads']}, {environment['cpu_count']} CPUs, "
          f"1-minute load average {environment['load_average_1min']:.2f}")
    if args.json:
        save_results(args.json, {"rows": rows, "environment": environment})


if __name__ == "__main__":
    main()
