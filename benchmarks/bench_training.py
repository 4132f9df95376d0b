"""Time one training step of the default configuration, and optionally report a finished run's timings.

The step is the one `cutswap.train` takes: forward of a batch of normals and their negatives
through `CutSwapNet`, cross-entropy, backward and an SGD step over the fine-tuned stages and the
head. At the cpu preset that is 16 normals with one negative per level (4 levels), so 80 images
of 128 x 128 per step. The batch is built once by `NegativeDataset` from synthetic images and
maps, so data loading is not timed (see bench_dataloader.py for that). The reported time is the
median over timed steps after untimed warm-up steps.

    python benchmarks/bench_training.py --json training.json
    python benchmarks/bench_training.py --run runs/elpv     # also report that run's timings
    python benchmarks/bench_training.py --default-run /tmp/default-run   # also run the main job

``--default-run`` runs ``python -m cutswap.train`` with its defaults in a fresh process, into
that directory (replacing an earlier benchmark run there), and reports its wall time, start-up
and imports included, beside the phase timings the run records.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from bench_dataloader import synthetic_dataset
from common import markdown_table, read_json, save_results
from cutswap.config import preset
from cutswap.pipeline import NegativeDataset
from cutswap.runs import CONFIG_FILE, METRICS_FILE
from cutswap.train import build_networks, resolve_device


def time_steps(
    *, image_size: int, batch_size: int, levels: int, warmup: int, repeats: int, device: str
) -> Dict[str, Any]:
    """Time `repeats` training steps after `warmup` untimed ones; return the times and their median."""
    config = preset("cpu", image_size=image_size, batch_size=batch_size, device=device)
    torch_device = resolve_device(config.device)
    images, maps = synthetic_dataset(batch_size, image_size, levels)
    dataset = NegativeDataset(images, maps, config, flips=True)
    items = [dataset[index] for index in range(batch_size)]
    batch = torch.stack([item[0] for item in items]).flatten(0, 1).to(torch_device).permute(0, 3, 1, 2)
    labels = torch.stack([item[1] for item in items]).flatten().to(torch_device)

    net, _ = build_networks(config, levels)
    net.to(torch_device)
    net.train()
    backbone_params, head_params = net.trainable_parameters()
    optimizer = torch.optim.SGD(
        [{"params": backbone_params, "lr": config.lr}, {"params": head_params, "lr": config.head_lr}],
        momentum=0.9,
    )
    use_amp = config.amp and torch_device.type == "cuda"

    def step() -> None:
        with torch.autocast(device_type=torch_device.type, dtype=torch.float16, enabled=use_amp):
            logits, _ = net(batch)
            loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if torch_device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    seconds: List[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    return {
        "image_size": image_size,
        "batch_size": batch_size,
        "levels": levels,
        "images_per_step": int(batch.shape[0]),
        "backbone": config.backbone,
        "device": str(torch_device),
        "threads": torch.get_num_threads(),
        "warmup": warmup,
        "repeats": repeats,
        "seconds": seconds,
        "median_s": median,
        "images_per_second": batch.shape[0] / median,
        "default_steps": preset("cpu").steps,
    }


def run_timings(directory: Path) -> Dict[str, Any]:
    """Return a finished run's timings and the settings that explain them."""
    directory = Path(directory)
    metrics_path = directory / METRICS_FILE
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{metrics_path} not found; pass --run with the directory of a finished run")
    metrics = read_json(metrics_path)
    saved = read_json(directory / CONFIG_FILE) if (directory / CONFIG_FILE).is_file() else {}
    train_config = saved.get("train", {})
    return {
        "run": str(directory),
        "timings": metrics.get("timings", {}),
        "image_auroc": metrics.get("image_auroc"),
        "device": metrics.get("device"),
        "augmentation": train_config.get("augmentation", metrics.get("augmentation")),
        "image_size": train_config.get("image_size"),
        "steps": train_config.get("steps"),
    }


def time_default_run(directory: Path) -> Dict[str, Any]:
    """Run the main job with its defaults into `directory`; return its wall time and timings."""
    command = [sys.executable, "-m", "cutswap.train", "--output", str(directory), "--overwrite",
               "--no-progress"]
    print(f"$ {' '.join(command)}", flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    result = run_timings(directory)
    result["wall_s"] = wall
    result["command"] = "python -m cutswap.train"
    return result


def format_table(result: Mapping[str, Any]) -> str:
    """Return Markdown: the step time table, then the run timings table when a run was given."""
    step = result["step"]
    rows = [[
        f"{step['backbone']}, {step['image_size']} px",
        f"{step['batch_size']} + {step['batch_size'] * step['levels']} = {step['images_per_step']}",
        f"{step['median_s']:.2f}",
        f"{step['images_per_second']:.1f}",
        f"{step['median_s'] * step['default_steps'] / 60:.1f}",
    ]]
    text = markdown_table(
        ["model", "images per step (normals + negatives)", "s / step (median)", "images / s",
         f"estimated min for {step['default_steps']} steps"],
        rows,
        align="lrrrr",
    )
    for key in ("default_run", "run"):
        run = result.get(key)
        if not run:
            continue
        timings = run["timings"]
        names = ("read_images_s", "saliency_s", "train_s", "score_s", "total_s")
        run_rows = [[name.removesuffix("_s").replace("_", " "), f"{timings[name]:.0f}"]
                    for name in names if name in timings]
        if "wall_s" in run:
            run_rows.append(["process wall time, start-up included", f"{run['wall_s']:.0f}"])
            title = f"`{run['command']}` with its defaults"
        else:
            title = f"the run in `{run['run']}`"
        auroc = run.get("image_auroc")
        auroc_text = f", image AUROC {auroc:.4f}" if isinstance(auroc, (int, float)) else ""
        text += (f"\n\nTimings of {title} ({run['augmentation']}, {run['image_size']} px, "
                 f"{run['steps']} steps, device {run['device']}{auroc_text}):\n\n")
        text += markdown_table(["phase", "seconds"], run_rows, align="lr")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=128,
                        help="image side in pixels (default 128, the cpu preset's)")
    parser.add_argument("--batch-size", type=int, default=16, help="normal images per step (default 16)")
    parser.add_argument("--levels", type=int, default=4,
                        help="saliency levels, one negative each (default 4)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps (default 3)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--run", type=Path, help="also report the timings of this finished run directory")
    parser.add_argument("--default-run", type=Path, metavar="DIR",
                        help="also run `python -m cutswap.train` with its defaults into DIR and time it")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    result: Dict[str, Any] = {
        "step": time_steps(image_size=args.image_size, batch_size=args.batch_size, levels=args.levels,
                           warmup=args.warmup, repeats=args.repeats, device=args.device),
    }
    if args.run:
        result["run"] = run_timings(args.run)
    if args.default_run:
        result["default_run"] = time_default_run(args.default_run)
    print(format_table(result))
    if args.json:
        save_results(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
