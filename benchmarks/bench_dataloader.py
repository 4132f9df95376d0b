"""Measure what CutSwap costs in the training data loader, against the weak augmentation alone.

Two pipelines run side by side through a torch DataLoader with the same images, batch size and
worker count:

* weak: the weak augmentation alone (`cutswap.pipeline.weak_augment` on the image, no maps), the
  work a loader does for training without negatives;
* weak + CutSwap: `cutswap.pipeline.NegativeDataset` with augmentation ``cutswap`` at every
  level, which also moves the maps with the image and makes one negative per level;
* weak + copies: the floor of any pipeline that returns 1 + L images per normal. It moves the
  maps with the image and returns L unchanged copies of the weak view, without k-means,
  sampling or swaps.

Throughput is normal (source) images per second over whole epochs, DataLoader start-up included,
because training builds a new DataLoader every epoch. An epoch has as many images as the ELPV
training set by default, so start-up weighs as much as in real training. The CutSwap pipeline
returns 1 + L images per normal image. Its cost is ``1 - cutswap_throughput / weak_throughput``,
and the goal is at most 10 percent. The floor's cost, computed the same way, is what returning
L extra images per normal costs before CutSwap does any work of its own. The images are random
128 x 128 uint8 with smooth synthetic 4-level maps, so no saliency model is needed.

    python benchmarks/bench_dataloader.py --json dataloader.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bench_augment import synthetic_inputs
from common import markdown_table, save_results
from cutswap.augment import derive_seed
from cutswap.config import TrainConfig, preset
from cutswap.pipeline import NegativeDataset, weak_augment, worker_init

COST_GOAL = 0.10


class WeakOnlyDataset(Dataset):
    """Normal images with the weak augmentation only, drawn from the same seeds as NegativeDataset.

    Each item is ``(images (1, 3, S, S) uint8 tensor, labels (1,) int64 tensor)``.
    """

    def __init__(self, images: np.ndarray, config: TrainConfig, *, flips: bool = True) -> None:
        self.images = images
        self.config = config
        self.flips = flips
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws `__getitem__` makes."""
        self.epoch = epoch

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(derive_seed(self.config.seed, self.epoch, index, 0))
        image, _ = weak_augment(self.images[index], None, rng, flips=self.flips,
                                translate=self.config.translate, color_jitter=self.config.color_jitter)
        tensor = torch.from_numpy(image)[None]
        return tensor, torch.zeros(1, dtype=torch.int64)


class CopiesDataset(WeakOnlyDataset):
    """The weak view and L unchanged copies of it, with the maps moved as NegativeDataset moves them.

    Each item is ``(images (1 + L, S, S, 3) uint8 tensor, labels (1 + L,) int64 tensor)``, the
    shapes NegativeDataset returns for CutSwap, so the two differ only in CutSwap's own work.
    """

    def __init__(
        self, images: np.ndarray, maps: np.ndarray, config: TrainConfig, *, flips: bool = True
    ) -> None:
        super().__init__(images, config, flips=flips)
        self.maps = maps
        self.labels = torch.arange(1 + maps.shape[1], dtype=torch.int64)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(derive_seed(self.config.seed, self.epoch, index, 0))
        image, _ = weak_augment(self.images[index], np.asarray(self.maps[index]), rng, flips=self.flips,
                                translate=self.config.translate, color_jitter=self.config.color_jitter)
        stack = np.repeat(image[None], len(self.labels), axis=0)
        return torch.from_numpy(stack), self.labels.clone()


def synthetic_dataset(count: int, size: int, levels: int) -> Tuple[np.ndarray, np.ndarray]:
    """Return (N, S, S, 3) uint8 random images and (N, L, S, S) uint8 smooth maps."""
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    maps = np.empty((count, levels, size, size), dtype=np.uint8)
    for index in range(count):
        images[index], maps[index] = synthetic_inputs(size, levels, seed=index)
    return images, maps


def normal_images_per_second(dataset: Any, batch_size: int, num_workers: int, epochs: int) -> float:
    """Return normal images per second over `epochs` full passes, each with a new DataLoader."""
    count = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                            drop_last=True, worker_init_fn=worker_init)
        for images, _ in loader:
            count += images.shape[0]
    return count / (time.perf_counter() - start)


def measure(
    *, count: int, size: int, levels: int, k: int, batch_size: int, workers: Sequence[int], epochs: int
) -> Dict[str, Any]:
    """Time both pipelines for each worker count, alternating them so load changes hit both."""
    images, maps = synthetic_dataset(count, size, levels)
    config = preset("cpu", augmentation="cutswap", k=k, image_size=size)
    weak = WeakOnlyDataset(images, config)
    negatives = NegativeDataset(images, maps, config, flips=True)
    copies = CopiesDataset(images, maps, config)

    rows: List[Dict[str, Any]] = []
    for num_workers in workers:
        # One untimed epoch each, so page faults and imports are not charged to the first pipeline.
        for dataset in (weak, copies, negatives):
            normal_images_per_second(dataset, batch_size, num_workers, 1)
        weak_rate = normal_images_per_second(weak, batch_size, num_workers, epochs)
        copies_rate = normal_images_per_second(copies, batch_size, num_workers, epochs)
        cutswap_rate = normal_images_per_second(negatives, batch_size, num_workers, epochs)
        cost = 1.0 - cutswap_rate / weak_rate
        rows.append({
            "num_workers": num_workers,
            "weak_images_per_second": weak_rate,
            "cutswap_images_per_second": cutswap_rate,
            "cutswap_output_images_per_second": cutswap_rate * (1 + levels),
            "copies_images_per_second": copies_rate,
            "cost": cost,
            "copies_cost": 1.0 - copies_rate / weak_rate,
            "goal_met": cost <= COST_GOAL,
        })
    return {"count": count, "size": size, "levels": levels, "k": k, "batch_size": batch_size,
            "epochs": epochs, "goal": COST_GOAL, "rows": rows}


def format_table(result: Mapping[str, Any]) -> str:
    """Return the Markdown table of `measure` output."""
    rows = []
    for row in result["rows"]:
        rows.append([
            row["num_workers"],
            f"{row['weak_images_per_second']:.0f}",
            f"{row['cutswap_images_per_second']:.0f}",
            f"{row['cutswap_output_images_per_second']:.0f}",
            f"{row['copies_images_per_second']:.0f}",
            f"{100 * row['copies_cost']:.0f} %",
            f"{100 * row['cost']:.0f} %",
            "yes" if row["goal_met"] else "no",
        ])
    levels = result["levels"]
    return markdown_table(
        ["workers", "weak only: normals / s", "weak + CutSwap: normals / s",
         f"weak + CutSwap: output images / s (1 + {levels} per normal)",
         f"weak + {levels} copies: normals / s", "cost of the copies alone", "CutSwap cost",
         f"cost <= {100 * result['goal']:.0f} %"],
        rows,
        align="rrrrrrrl",
    )


def describe_settings(result: Mapping[str, Any]) -> str:
    side = result["size"]
    return (f"{result['count']} synthetic {side} x {side} images, {result['levels']} levels, "
            f"k={result['k']}, batch {result['batch_size']}, timed epochs per pipeline: {result['epochs']}; "
            "cost = 1 - (CutSwap normals / s) / (weak-only normals / s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # 1131 is the ELPV training set, so DataLoader start-up weighs as much as in a real epoch.
    parser.add_argument("--images", type=int, default=1131, help="synthetic images per epoch (default 1131)")
    parser.add_argument("--size", type=int, default=128,
                        help="image side in pixels (default 128, the cpu preset's)")
    parser.add_argument("--levels", type=int, default=4, help="saliency levels (default 4)")
    parser.add_argument("--k", type=int, default=3, help="k-means clusters (default 3)")
    parser.add_argument("--batch-size", type=int, default=16, help="normal images per batch (default 16)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="DataLoader worker counts to time (default 0 2)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per pipeline (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.images < args.batch_size:
        raise SystemExit(f"--images {args.images} must be at least --batch-size {args.batch_size}")
    torch.set_num_threads(1)
    result = measure(count=args.images, size=args.size, levels=args.levels, k=args.k,
                     batch_size=args.batch_size, workers=args.workers, epochs=args.epochs)
    print(describe_settings(result))
    print(format_table(result))
    for row in result["rows"]:
        verdict = "met" if row["goal_met"] else "NOT met"
        print(f"{row['num_workers']} workers: CutSwap costs {100 * row['cost']:.1f} % of the weak-only "
              f"throughput; the goal of at most {100 * COST_GOAL:.0f} % is {verdict}; returning "
              f"{args.levels} unchanged copies alone costs {100 * row['copies_cost']:.1f} %")
    if args.json:
        save_results(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
