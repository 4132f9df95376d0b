"""Benchmark CutSwap negatives: the Rust path against the NumPy + scikit-learn reference.

Usage:
    python benchmarks/bench_augment.py                  # 256 x 256 RGB, 4 levels, k = 3
    python benchmarks/bench_augment.py --scaling --plot scaling.png
    python benchmarks/bench_augment.py --json benchmarks/results/augment.json

The default run times one image and its (L, H, W) uint8 maps through two paths on the same
inputs in the same process: `CutSwapTransform` (Rust) and
`cutswap.reference.reference_cutswap_levels` (NumPy + scikit-learn `KMeans` with its default
`n_init`). It prints images per second for each and the ratio. The reference runs with BLAS
and OpenMP pools limited to `--threads` threads (default 1), because the Rust path is
single-threaded.

`--scaling` times k-means alone and k-means + sampling + swap for one level, for several
image sides and k. `time_scaling` is importable for other scripts.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from common import save_results
from cutswap.augment import CutSwapTransform, saliency_kmeans
from cutswap.reference import reference_cutswap_levels


def synthetic_inputs(size: int, levels: int, seed: int = 0) -> tuple:
    """Return a (size, size, 3) uint8 image and (levels, size, size) uint8 maps of smooth blobs.

    Real LayerCAM maps are smooth with a few bright regions, so each map is a sum of Gaussian
    blobs scaled to [0, 255], which gives k-means a realistic value distribution.
    """
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    rows, columns = np.mgrid[0:size, 0:size].astype(np.float64) / size
    maps = np.empty((levels, size, size), dtype=np.uint8)
    for level in range(levels):
        heat = np.zeros((size, size))
        for _ in range(4):
            centre_y, centre_x = rng.random(2)
            spread = rng.uniform(0.05, 0.2)
            heat += rng.uniform(0.3, 1.0) * np.exp(
                -((rows - centre_y) ** 2 + (columns - centre_x) ** 2) / (2 * spread**2)
            )
        maps[level] = np.round(255 * heat / heat.max()).astype(np.uint8)
    return image, maps


def seconds_per_call(function: Callable[[int], object], min_calls: int, min_seconds: float) -> float:
    """Return the mean wall time of `function(call_index)` over at least the given calls and time."""
    function(0)
    calls = 0
    start = time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        function(calls)
        calls += 1
    return (time.perf_counter() - start) / calls


def compare(size: int, levels: int, k: int, min_seconds: float, threads: int) -> Dict[str, float]:
    """Time the Rust and the reference path on the same inputs."""
    image, maps = synthetic_inputs(size, levels)
    transform = CutSwapTransform(k=k)

    rust = seconds_per_call(lambda index: transform(image, maps, index), 20, min_seconds)
    with threadpool_limits(limits=threads):
        reference = seconds_per_call(
            lambda index: reference_cutswap_levels(image, maps, k=k, seed=index), 3, min_seconds
        )
    return {
        "size": size,
        "levels": levels,
        "k": k,
        "rust_images_per_second": 1.0 / rust,
        "reference_images_per_second": 1.0 / reference,
        "speedup": reference / rust,
        "rust_microseconds_per_level": rust * 1e6 / levels,
        "reference_milliseconds_per_level": reference * 1e3 / levels,
    }


def time_scaling(
    sides: Sequence[int], ks: Sequence[int], min_seconds: float = 0.2, map_dtype: str = "uint8"
) -> List[Dict[str, float]]:
    """Time the Rust path for one level per image across image sides and k.

    Returns:
        One row per (side, k) with `kmeans_us` (k-means with labels) and `total_us`
        (k-means + sampling + swap through `CutSwapTransform`), in microseconds per image.
    """
    rows = []
    for side in sides:
        image, maps = synthetic_inputs(side, 1, seed=side)
        if map_dtype == "float32":
            maps = (
                maps.astype(np.float32) / 255 + np.random.default_rng(1).random(maps.shape) * 1e-3
            ).astype(np.float32)
        for k in ks:
            kmeans, total = _time_one_level(image, maps, k, min_seconds)
            rows.append({"side": side, "k": k, "kmeans_us": kmeans * 1e6, "total_us": total * 1e6})
    return rows


def _time_one_level(image: np.ndarray, maps: np.ndarray, k: int, min_seconds: float) -> tuple:
    """Return seconds per call of k-means alone and of the whole one-level transform."""
    transform = CutSwapTransform(k=k)
    kmeans = seconds_per_call(lambda _: saliency_kmeans(maps[0], k), 5, min_seconds)
    total = seconds_per_call(lambda index: transform(image, maps, index), 5, min_seconds)
    return kmeans, total


def plot_scaling(rows: List[Dict[str, float]], path: str) -> None:
    """Write a log-log plot of total time per image against image side, one line per k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for k in sorted({row["k"] for row in rows}):
        selected = [row for row in rows if row["k"] == k]
        axis.plot(
            [row["side"] for row in selected], [row["total_us"] for row in selected], "o-", label=f"k={k}"
        )
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xlabel("image side (pixels)")
    axis.set_ylabel("microseconds per image, one level")
    axis.set_title("CutSwap (Rust): k-means + sampling + swap")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def hardware() -> Dict[str, object]:
    return {
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument("--levels", type=int, default=4, help="saliency levels per image (default 4)")
    parser.add_argument("--k", type=int, default=3, help="k-means clusters (default 3)")
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timing per path in seconds")
    parser.add_argument("--threads", type=int, default=1, help="thread limit for the reference (default 1)")
    parser.add_argument("--scaling", action="store_true", help="also time sides 128-1024 and k in {2,3,5,8}")
    parser.add_argument(
        "--sides", type=int, nargs="+", default=[128, 256, 512, 1024], help="sides for --scaling"
    )
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 3, 5, 8], help="k values for --scaling")
    parser.add_argument(
        "--map-dtype", choices=["uint8", "float32"], default="uint8", help="map dtype for --scaling"
    )
    parser.add_argument("--plot", help="PNG path for the --scaling plot")
    parser.add_argument("--json", help="write all results to this JSON file")
    args = parser.parse_args(argv)

    results: Dict[str, object] = {"hardware": hardware()}
    print(f"hardware: {results['hardware']}")

    comparison = compare(args.size, args.levels, args.k, args.seconds, args.threads)
    results["comparison"] = comparison
    print(
        f"{args.size}x{args.size} RGB, {args.levels} levels, k={args.k}:\n"
        f"  rust       {comparison['rust_images_per_second']:10.1f} images/s"
        f"  ({comparison['rust_microseconds_per_level']:.1f} us per image per level)\n"
        f"  reference  {comparison['reference_images_per_second']:10.2f} images/s"
        f"  ({comparison['reference_milliseconds_per_level']:.1f} ms per image per level)\n"
        f"  speedup    {comparison['speedup']:10.0f}x"
    )

    if args.scaling:
        rows = time_scaling(args.sides, args.ks, min_seconds=args.seconds / 10, map_dtype=args.map_dtype)
        results["scaling"] = rows
        print(f"\nscaling ({args.map_dtype} maps, one level, microseconds per image):")
        print(f"{'side':>6} {'k':>3} {'kmeans':>10} {'total':>10}")
        for row in rows:
            print(f"{row['side']:>6} {row['k']:>3} {row['kmeans_us']:>10.1f} {row['total_us']:>10.1f}")
        if args.plot:
            plot_scaling(rows, args.plot)
            print(f"plot written to {args.plot}")

    if args.json:
        save_results(args.json, results)


if __name__ == "__main__":
    main()
