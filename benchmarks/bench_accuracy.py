"""Compare negative-sample methods on the ELPV literature split with one backbone, size and schedule.

Every method trains with `cutswap.train.train` from the same preset and differs only in the
augmentation fields of the configuration, over several seeds:

    python benchmarks/bench_accuracy.py                       # cpu preset (128 px, 40 steps), seeds 0 1 2
    python benchmarks/bench_accuracy.py --quick               # 128 px, 40 steps, seed 0
    python benchmarks/bench_accuracy.py --configs none cutswap --seeds 0 --json accuracy.json

Runs go to ``--work-dir/<tag>/<method>/seed<N>``, where the tag names the image size and steps.
A run whose metrics.json exists is skipped and an unfinished one is resumed, so an interrupted
suite continues where it stopped. Saliency maps are cached once in ``--work-dir/saliency``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from common import markdown_table, mean_std, read_json, save_results
from cutswap.config import preset
from cutswap.runs import CONFIG_FILE, METRICS_FILE

logger = logging.getLogger("bench_accuracy")

DEFAULT_WORK_DIR = Path("/tmp/cutswap-bench")
# The quick protocol differs from the full one in the seeds only. On 2 CPU cores the accuracy
# section took about 6 minutes with one seed per method and about 18 with three.
QUICK_IMAGE_SIZE = 128
QUICK_STEPS = 40
QUICK_SEEDS = (0,)
FULL_SEEDS = (0, 1, 2)
DATASET = ("elpv", {"variant": "literature"})


@dataclass(frozen=True)
class Method:
    """One row of the ablation: a label and the configuration fields it changes."""

    label: str
    overrides: Mapping[str, Any]


METHODS: Dict[str, Method] = {
    "none_head": Method("frozen backbone + Gaussian on the final pooled features (no training)",
                        {"augmentation": "none", "embedding": "trained"}),
    "none": Method("frozen backbone + Gaussians on final and multi-level pooled features (no training)",
                   {"augmentation": "none"}),
    "cutswap_trained_only": Method("CutSwap, all levels, k=3, Gaussian on the trained features alone",
                                   {"augmentation": "cutswap", "k": 3, "embedding": "trained"}),
    "cutpaste": Method("CutPaste, binary", {"augmentation": "cutpaste"}),
    "cutpaste_3way": Method("CutPaste 3-way", {"augmentation": "cutpaste_3way"}),
    "random_swap": Method("random swap", {"augmentation": "random_swap"}),
    "cutswap_1level": Method("CutSwap, one saliency level, k=3",
                             {"augmentation": "cutswap", "num_levels": 1}),
    "cutswap": Method("CutSwap, all levels, k=3", {"augmentation": "cutswap", "k": 3}),
    "cutswap_k2": Method("CutSwap, all levels, k=2", {"augmentation": "cutswap", "k": 2}),
    "cutswap_k5": Method("CutSwap, all levels, k=5", {"augmentation": "cutswap", "k": 5}),
}

# Image AUROC on the ELPV literature split reported by other papers; these were not run here.
PUBLISHED = (("PatchCore", 0.916), ("KDAD", 0.744))


def settings_tag(image_size: int, steps: int) -> str:
    """Name the run-directory level of one size and schedule, so quick and full runs never mix."""
    return f"size{image_size}-steps{steps}"


def run_directory(work_dir: Path, image_size: int, steps: int, method: str, seed: int) -> Path:
    return Path(work_dir) / settings_tag(image_size, steps) / method / f"seed{seed}"


def run_state(directory: Path) -> str:
    """Return ``finished`` (metrics.json exists), ``unfinished`` (config.json only) or ``new``."""
    directory = Path(directory)
    if (directory / METRICS_FILE).is_file():
        return "finished"
    if (directory / CONFIG_FILE).is_file():
        return "unfinished"
    return "new"


def run_one(
    work_dir: Path, method: str, seed: int, image_size: int, steps: int, *, device: str, progress: bool
) -> Dict[str, Any]:
    """Train and score one (method, seed) run, or read its metrics when it already finished."""
    from cutswap.train import train

    directory = run_directory(work_dir, image_size, steps, method, seed)
    state = run_state(directory)
    if state == "finished":
        logger.info("skipping %s seed %d: %s exists", method, seed, directory / METRICS_FILE)
        return read_json(directory / METRICS_FILE)

    config = preset("cpu", image_size=image_size, steps=steps, seed=seed, device=device,
                    **METHODS[method].overrides)
    action = "resuming" if state == "unfinished" else "running"
    logger.info("%s %s seed %d in %s", action, method, seed, directory)
    return train(config, DATASET, directory, resume=state == "unfinished",
                 saliency_cache_dir=Path(work_dir) / "saliency", progress=progress)


def summarize(results: Mapping[str, Sequence[Mapping[str, Any]]]) -> List[Dict[str, Any]]:
    """Reduce each method's per-seed metrics to the values of one table row."""
    rows = []
    for method, runs in results.items():
        rows.append({
            "method": method,
            "label": METHODS[method].label if method in METHODS else method,
            "seeds": len(runs),
            "image_auroc": [run["image_auroc"] for run in runs],
            "mono": [run["per_group"].get("mono", {}).get("image_auroc") for run in runs],
            "poly": [run["per_group"].get("poly", {}).get("image_auroc") for run in runs],
            "total_s": [run["timings"]["total_s"] for run in runs],
            "train_s": [run["timings"]["train_s"] for run in runs],
        })
    return rows


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Return the Markdown table: mean ± std over seeds, then the published reference rows.

    NOTE: a resumed run's timings cover only the part after the resume, so its time columns
    understate a whole run.
    """
    table_rows: List[List[Any]] = []
    for row in rows:
        table_rows.append([
            row["label"],
            mean_std(row["image_auroc"]),
            mean_std(row["mono"]),
            mean_std(row["poly"]),
            row["seeds"],
            f"{statistics.fmean(row['train_s']):.0f}",
            f"{statistics.fmean(row['total_s']):.0f}",
        ])
    for name, auroc in PUBLISHED:
        table_rows.append([f"{name} (published, not run here)", f"{auroc:.3f}", "-", "-", "-", "-", "-"])
    return markdown_table(
        ["method", "image AUROC", "mono", "poly", "seeds", "train s / run", "total s / run"],
        table_rows,
        align="lrrrrrr",
    )


def describe_settings(image_size: int, steps: int, seeds: Sequence[int], quick: bool) -> str:
    """Return one line naming the protocol; anything other than the full one is labelled as such."""
    full = preset("cpu")
    if quick:
        label = "QUICK protocol, one seed per method"
    elif (image_size, steps, list(seeds)) == (full.image_size, full.steps, list(FULL_SEEDS)):
        label = "full protocol"
    else:
        label = "custom settings, not the full protocol"
    return (f"{label}: ELPV literature split, EfficientNet-Lite0, cpu preset with image size {image_size} px "
            f"and {steps} steps, seeds {' '.join(str(seed) for seed in seeds)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"smaller protocol: {QUICK_IMAGE_SIZE} px, {QUICK_STEPS} steps, seed 0 "
                             "(explicit options still win)")
    parser.add_argument("--image-size", type=int, help="image side in pixels (default: the cpu preset's)")
    parser.add_argument("--steps", type=int, help="optimiser steps per run (default: the cpu preset's)")
    parser.add_argument("--seeds", type=int, nargs="+", help="training seeds (default 0 1 2, quick 0)")
    parser.add_argument("--configs", nargs="+", choices=list(METHODS), default=list(METHODS),
                        help="methods to run (default: all)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR,
                        help=f"run directories and saliency cache (default {DEFAULT_WORK_DIR})")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--json", type=Path, help="also write the summary to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def resolve_settings(args: argparse.Namespace) -> tuple:
    """Return (image_size, steps, seeds) from the options, with --quick defaults."""
    if args.quick:
        image_size, steps, seeds = QUICK_IMAGE_SIZE, QUICK_STEPS, list(QUICK_SEEDS)
    else:
        full = preset("cpu")
        image_size, steps, seeds = full.image_size, full.steps, list(FULL_SEEDS)
    if args.image_size:
        image_size = args.image_size
    if args.steps is not None:
        steps = args.steps
    if args.seeds:
        seeds = list(args.seeds)
    return image_size, steps, seeds


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    image_size, steps, seeds = resolve_settings(args)
    settings = describe_settings(image_size, steps, seeds, args.quick)
    print(settings, flush=True)

    results: Dict[str, List[Dict[str, Any]]] = {}
    for method in args.configs:
        results[method] = [
            run_one(args.work_dir, method, seed, image_size, steps, device=args.device,
                    progress=not args.no_progress)
            for seed in seeds
        ]
    rows = summarize(results)
    table = format_table(rows)
    print(f"\n{settings}\n\n{table}")

    if args.json:
        save_results(args.json, {
            "quick": args.quick,
            "image_size": image_size,
            "steps": steps,
            "seeds": seeds,
            "settings": settings,
            "rows": rows,
            "work_dir": str(args.work_dir),
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
