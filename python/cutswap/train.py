"""Train a CutSwap model and score its test set: the main job, `python -m cutswap.train`.

By default it trains on the ELPV solar-cell images shipped by the `elpv-dataset` package with the
offline EfficientNet-Lite0 backbone, on the CPU or the GPU, and writes a run directory (see
`cutswap.runs`) with the image AUROC in `metrics.json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, RandomSampler
from tqdm.auto import tqdm

from . import __version__
from .augment import derive_seed
from .backbones import default_layers
from .config import AUGMENTATIONS, EMBEDDINGS, HEADS, PRESETS, TrainConfig, preset
from .data import (
    DatasetSplit,
    ImageRecord,
    add_dataset_arguments,
    dataset_spec_from_args,
    image_sources,
    load_dataset,
    on_error_from_args,
    read_images,
)
from .embedding import embed_images
from .evaluation import evaluate_scores, write_evaluation
from .localization import fit_localization, save_localization
from .model import CutSwapNet, FrozenReference
from .pipeline import NegativeDataset, num_negative_classes, worker_init
from .runs import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    DENSITY_FILE,
    FORMAT_VERSION,
    LOG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    atomic_torch_save,
    atomic_write_json,
    load_tensor_file,
    read_run_config,
)
from .scoring import CombinedDensity

# Named explicitly: run as `python -m cutswap.train`, __name__ would be "__main__".
logger = logging.getLogger("cutswap.train")

# The epoch stream of derive_seed that orders the samples; per-sample streams use the index.
_SAMPLER_STREAM = 2**31 - 1


def resolve_device(name: str) -> torch.device:
    """Return the torch device for ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu or auto")
    return torch.device(name)


def saliency_layers(config: TrainConfig) -> List[str]:
    """Return the saliency layers the run uses, deepest first."""
    layers = list(config.levels) or default_layers(config.backbone)
    if config.num_levels is not None:
        if config.num_levels > len(layers):
            raise ValueError(
                f"num_levels is {config.num_levels} but only {len(layers)} saliency layers are set: {layers}"
            )
        layers = layers[: config.num_levels]
    return layers


def check_run_dir(
    output: Path, *, resume: bool, overwrite: bool
) -> Optional[Tuple[TrainConfig, Tuple[str, Dict[str, Any]]]]:
    """Check that `output` may be used as asked; never overwrite a run silently.

    Returns:
        The saved configuration and dataset when resuming, else None.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise FileExistsError(f"output {output} is a file, not a directory; choose another --output")
    exists = output.exists() and any(output.iterdir())
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other; pass one of them")

    if resume:
        if not exists:
            raise FileNotFoundError(f"cannot resume: run directory {output} does not exist or is empty")
        if (output / METRICS_FILE).exists():
            raise FileExistsError(
                f"cannot resume: the run in {output} is already finished; re-score it with "
                f"python -m cutswap.evaluate {output}, or pass --overwrite to train it again"
            )
        saved = read_run_config(output)
        return TrainConfig.from_dict(saved["train"]), (saved["dataset"]["name"], saved["dataset"]["options"])

    if exists and not (output / CONFIG_FILE).exists():
        raise FileExistsError(
            f"output directory {output} is not empty and contains no cutswap run, so it is left alone; "
            "choose another --output"
        )
    if exists and not overwrite:
        if (output / METRICS_FILE).exists():
            advice = "pass --overwrite to replace it or choose another --output"
            state = "a finished run"
        else:
            advice = "pass --resume to finish it, --overwrite to replace it, or choose another --output"
            state = "an unfinished run"
        raise FileExistsError(f"output directory {output} already contains {state}; {advice}")
    return None


def create_run_dir(
    output: Path, config: TrainConfig, dataset: Tuple[str, Dict[str, Any]], *, overwrite: bool
) -> None:
    """Create the run directory with its `config.json`, first deleting a previous run if `overwrite`."""
    output = Path(output)
    if overwrite and (output / CONFIG_FILE).exists():
        logger.warning("--overwrite: deleting the previous run in %s", output)
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        output / CONFIG_FILE,
        {
            "format_version": FORMAT_VERSION,
            "cutswap_version": __version__,
            "train": config.to_dict(),
            "dataset": {"name": dataset[0], "options": _jsonable(dataset[1])},
        },
    )


def _jsonable(options: Dict[str, Any]) -> Dict[str, Any]:
    return {key: (str(value) if isinstance(value, Path) else value) for key, value in options.items()}


class _RunLogging:
    """Send this package's log records to the run directory's log file while a run is active."""

    def __init__(self, path: Path) -> None:
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.handler.setLevel(logging.DEBUG)
        self.package_logger = logging.getLogger("cutswap")

    def __enter__(self) -> _RunLogging:
        self.package_logger.addHandler(self.handler)
        if self.package_logger.level == logging.NOTSET or self.package_logger.level > logging.INFO:
            self.previous_level = self.package_logger.level
            self.package_logger.setLevel(logging.INFO)
        else:
            self.previous_level = None
        return self

    def write_exception(self, message: str, *, traceback: bool = True) -> None:
        """Write `message`, and the traceback of the exception being handled, to the log file alone."""
        exc_info = sys.exc_info() if traceback else None
        record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, message, (), exc_info)
        self.handler.handle(record)

    def __exit__(self, *exc_info: Any) -> None:
        self.package_logger.removeHandler(self.handler)
        self.handler.close()
        if self.previous_level is not None:
            self.package_logger.setLevel(self.previous_level)


def build_networks(
    config: TrainConfig, num_levels: int, *, pretrained: bool = True
) -> Tuple[CutSwapNet, Optional[FrozenReference]]:
    """Build the network and its frozen ImageNet reference (None for a run that needs neither)."""
    torch.manual_seed(config.seed)
    if config.augmentation == "none":
        net = CutSwapNet(
            config.backbone, num_classes=2, trainable_stages=0, pretrained=pretrained, freeze_bn=True
        )
        # Without training, the trained embedding is the ImageNet one. The reference then only adds
        # the pooled features of `frozen_stages`, so "none" is scored exactly like a trained run.
        if config.embedding == "trained+frozen":
            return net, FrozenReference(net, config.frozen_stages)
        return net, None
    num_classes = 1 + num_negative_classes(config, num_levels)
    net = CutSwapNet(
        config.backbone,
        num_classes=num_classes,
        trainable_stages=config.trainable_stages,
        pretrained=pretrained,
        freeze_bn=config.freeze_bn,
    )
    reference = FrozenReference(net, config.frozen_stages)
    return net, reference


def train(
    config: TrainConfig,
    dataset: Tuple[str, Dict[str, Any]] = ("elpv", {}),
    output: Path = Path("runs/elpv"),
    *,
    resume: bool = False,
    overwrite: bool = False,
    saliency_cache_dir: Optional[Path] = None,
    on_error: str = "raise",
    progress: bool = True,
    runtime: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Train a model on a dataset's normal images, score its test set and write the run directory.

    Args:
        config: the training configuration (see `TrainConfig`); validated here.
        dataset: the dataset name and the options of its loader (see `cutswap.data.load_dataset`).
        output: the run directory.
        resume: finish the run in `output` from its last checkpoint, with its saved configuration.
        overwrite: delete a previous run in `output` first.
        saliency_cache_dir: where saliency maps are cached; defaults to ``output/saliency``. A
            shared directory lets runs with the same images and saliency settings reuse the maps.
        on_error: ``raise`` on unreadable images (all are listed) or ``skip`` them with a warning.
        progress: show progress bars.
        runtime: values of `RUNTIME_FIELDS` (device, num_workers) that replace the saved ones
            when resuming. They change where and how fast the run goes, not what it learns.

    Returns:
        The metrics written to ``metrics.json``.
    """
    config.validate()
    output = Path(output)
    unknown = sorted(set(runtime or {}) - set(RUNTIME_FIELDS))
    if unknown:
        raise ValueError(f"runtime accepts only {', '.join(RUNTIME_FIELDS)}, got {', '.join(unknown)}")
    saved = check_run_dir(output, resume=resume, overwrite=overwrite)
    if saved is not None:
        config, dataset = saved
        if runtime:
            config = dataclasses.replace(config, **runtime)
            config.validate()
    # Settings that fail only later, at the device or the model, are checked before anything is
    # read or written, so a typo does not leave a run directory behind.
    device = resolve_device(config.device)
    saliency_layers(config)

    # The data are read before the run directory is created, so a bad path or a corrupt image
    # leaves nothing behind that would block the corrected command.
    clock = time.perf_counter()
    data = _read_data(config, dataset, on_error, progress)
    read_seconds = time.perf_counter() - clock
    if saved is None:
        create_run_dir(output, config, dataset, overwrite=overwrite)

    with _RunLogging(output / LOG_FILE) as run_logging:
        if saved is not None:
            logger.info("resuming the run in %s from its last checkpoint, with its saved settings", output)
        try:
            return _run(config, dataset, output, data, read_seconds, saliency_cache_dir, progress, device)
        except Exception:
            # The traceback goes to the run's log only; the console gets the one-line error.
            run_logging.write_exception(f"run in {output} failed")
            raise
        except KeyboardInterrupt:
            # The caller prints the console message. The log records the interrupt for later
            # readers of the run directory.
            run_logging.write_exception(
                f"interrupted; finish the run with: python -m cutswap.train --output {output} --resume",
                traceback=False,
            )
            raise


def _read_data(
    config: TrainConfig, dataset: Tuple[str, Dict[str, Any]], on_error: str, progress: bool
) -> Tuple[DatasetSplit, np.ndarray, List[ImageRecord], np.ndarray, List[ImageRecord]]:
    """Load the split and decode its images: (split, train images, their records, test images, theirs)."""
    split = load_dataset(dataset[0], **dataset[1])
    train_images, train_records = read_images(
        split.train, config.image_size, on_error=on_error, progress=progress
    )
    test_images, test_records = read_images(
        split.test, config.image_size, on_error=on_error, progress=progress
    )
    return split, train_images, train_records, test_images, test_records


def _run(
    config: TrainConfig,
    dataset: Tuple[str, Dict[str, Any]],
    output: Path,
    data: Tuple[DatasetSplit, np.ndarray, List[ImageRecord], np.ndarray, List[ImageRecord]],
    read_seconds: float,
    saliency_cache_dir: Optional[Path],
    progress: bool,
    device: torch.device,
) -> Dict[str, Any]:
    split, train_images, train_records, test_images, test_records = data
    timings: Dict[str, float] = {"read_images_s": read_seconds}
    started = time.perf_counter() - read_seconds
    logger.info("cutswap %s: %s on %s, device %s", __version__, config.augmentation, dataset[0], device)
    logger.info("configuration: %s", config.to_json().replace("\n", " "))
    logger.info("dataset: %s", split.summary())

    maps = None
    layers: List[str] = []
    if config.augmentation == "cutswap":
        from .saliency import saliency_cache

        layers = saliency_layers(config)
        clock = time.perf_counter()
        maps = saliency_cache(
            Path(saliency_cache_dir) if saliency_cache_dir else output / "saliency",
            train_images,
            image_sources(train_records),
            backbone=config.backbone,
            layers=layers,
            size=config.image_size,
            batch_size=config.saliency_batch_size,
            device=device,
            progress=progress,
        )
        timings["saliency_s"] = time.perf_counter() - clock

    net, reference = build_networks(config, len(layers))
    net.to(device)
    if reference is not None:
        reference.to(device)

    clock = time.perf_counter()
    negatives_preview = None
    if config.augmentation != "none" and config.steps > 0:
        train_set = NegativeDataset(train_images, maps, config, flips=split.flips)
        _fit(net, reference, train_set, config, output, device, progress)
        negatives_preview = [train_set[index] for index in range(min(4, len(train_set)))]
    timings["train_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    use_frozen = reference is not None and config.embedding == "trained+frozen"

    def embed(images: np.ndarray, description: str) -> Dict[str, np.ndarray]:
        return embed_images(
            net,
            reference if use_frozen else None,
            images,
            batch_size=config.eval_batch_size,
            device=device,
            progress=progress,
            description=description,
        )

    train_embeddings = embed(train_images, "embedding training normals")
    density = CombinedDensity.fit(train_embeddings)
    test_embeddings = embed(test_images, "embedding test images")
    train_scores = CombinedDensity.held_out_scores(train_embeddings, seed=config.seed)
    test_scores = density.score(test_embeddings)
    timings["score_s"] = time.perf_counter() - clock

    atomic_torch_save(
        output / MODEL_FILE,
        {
            "net": net.state_dict(),
            "reference": reference.state_dict() if use_frozen and reference is not None else {},
            "saliency_layers": layers,
        },
    )
    atomic_torch_save(output / DENSITY_FILE, density.state_dict())
    save_localization(
        output,
        fit_localization(
            net, train_images, batch_size=config.eval_batch_size, device=device, progress=progress
        ),
    )

    timings["total_s"] = time.perf_counter() - started
    metrics = evaluate_scores(test_records, test_scores, train_scores, config.threshold_quantile)
    metrics["timings"] = timings
    metrics["num_train"] = len(train_records)
    metrics["num_test"] = len(test_records)
    metrics["dataset"] = {"name": split.name, "description": split.description}
    metrics["augmentation"] = config.augmentation
    metrics["device"] = str(device)
    write_evaluation(output, metrics, test_records, test_scores, negatives_preview, prefix="")
    logger.info(
        "image AUROC %.4f on %d test images (run directory %s)",
        metrics["image_auroc"],
        len(test_records),
        output,
    )
    return metrics


def _fit(
    net: CutSwapNet,
    reference: Optional[FrozenReference],
    train_set: NegativeDataset,
    config: TrainConfig,
    output: Path,
    device: torch.device,
    progress: bool,
) -> None:
    """Train `net` for `config.steps` steps, checkpointing atomically after every epoch."""
    backbone_params, head_params = net.trainable_parameters()
    optimizer = torch.optim.SGD(
        [
            {"params": backbone_params, "lr": config.lr, "weight_decay": 0.0},
            {"params": head_params, "lr": config.head_lr, "weight_decay": config.weight_decay},
        ],
        momentum=0.9,
    )
    total = config.steps
    warmup = min(config.warmup_steps, total)

    def backbone_factor(step: int) -> float:
        if step < warmup:
            return 0.0
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    def head_factor(step: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * step / max(1, total)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [backbone_factor, head_factor])
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    # The ImageNet values of the fine-tuned weights, for the L2-SP penalty.
    anchors: List[torch.Tensor] = []
    if config.pretrained_decay > 0 and reference is not None:
        anchors = [p.detach().clone() for stage in reference.stages for p in stage.parameters()]

    step = 0
    epoch = 0
    checkpoint_path = output / CHECKPOINT_FILE
    if checkpoint_path.exists():
        state = load_tensor_file(checkpoint_path)
        net.load_state_dict(state["net"])
        if reference is not None and state.get("reference"):
            reference.load_state_dict(state["reference"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        step = int(state["step"])
        epoch = int(state["epoch"])
        logger.info("resumed from %s at step %d of %d (epoch %d)", checkpoint_path, step, total, epoch)
        if anchors and reference is not None:
            anchors = [p.detach().clone() for stage in reference.stages for p in stage.parameters()]

    if len(train_set) < config.batch_size:
        raise ValueError(
            f"batch_size {config.batch_size} is larger than the {len(train_set)} training images; "
            "lower --batch-size or add images"
        )
    bar = tqdm(total=total, initial=step, desc="training", unit="step", disable=not progress)
    net.train()
    while step < total:
        train_set.set_epoch(epoch)
        generator = torch.Generator().manual_seed(derive_seed(config.seed, epoch, _SAMPLER_STREAM))
        loader = DataLoader(
            train_set,
            batch_size=config.batch_size,
            sampler=RandomSampler(train_set, generator=generator),
            num_workers=config.num_workers,
            drop_last=True,
            worker_init_fn=worker_init,
            pin_memory=device.type == "cuda",
        )
        running = 0.0
        seen = 0
        for images, labels in loader:
            images = images.flatten(0, 1).to(device, non_blocking=True).permute(0, 3, 1, 2)
            labels = labels.flatten().to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                logits, _ = net(images)
                loss = F.cross_entropy(logits.float(), labels)
                if anchors:
                    drift = sum(((p - a) ** 2).sum() for p, a in zip(backbone_params, anchors))
                    loss = loss + 0.5 * config.pretrained_decay * drift
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training loss became {loss.item()} at step {step}; lower --lr or --head-lr"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            running += loss.item()
            seen += 1
            bar.update(1)
            bar.set_postfix(loss=f"{running / seen:.4f}", epoch=epoch)
            if step >= total:
                break
        logger.info(
            "epoch %d: mean loss %.4f over %d steps (step %d of %d)",
            epoch,
            running / max(1, seen),
            seen,
            step,
            total,
        )
        epoch += 1
        atomic_torch_save(
            checkpoint_path,
            {
                "net": net.state_dict(),
                "reference": reference.state_dict() if reference is not None else {},
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "step": step,
                "epoch": epoch,
            },
        )
    bar.close()
    net.eval()


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `python -m cutswap.train`."""
    parser = argparse.ArgumentParser(
        prog="python -m cutswap.train",
        description="Train a CutSwap anomaly detector on normal images and report image AUROC "
        "on the test split.",
    )
    add_dataset_arguments(parser)
    run = parser.add_argument_group("run")
    run.add_argument(
        "--preset",
        default="cpu",
        choices=sorted(PRESETS),
        help="settings to start from (default: cpu, about a minute for ELPV on 2 cores)",
    )
    run.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="DIR",
        help="run directory (default: runs/<dataset>-<augmentation>)",
    )
    run.add_argument("--resume", action="store_true", help="finish the interrupted run in --output")
    run.add_argument("--overwrite", action="store_true", help="delete an existing run in --output first")
    run.add_argument(
        "--saliency-cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="saliency cache directory shared between runs (default: <output>/saliency)",
    )
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("-v", "--verbose", action="store_true", help="log debug messages")

    options = parser.add_argument_group("training (each overrides the preset)")
    options.add_argument("--augmentation", choices=AUGMENTATIONS, help="how negatives are made")
    options.add_argument("--head", choices=HEADS, help="multiclass (one class per level) or binary")
    options.add_argument("--backbone", choices=("efficientnet_lite0", "resnet18"), help="ImageNet backbone")
    options.add_argument("--image-size", type=int, help="image side in pixels")
    options.add_argument("--levels", nargs="+", help="saliency layer names, deepest first")
    options.add_argument("--num-levels", type=int, help="use the first N saliency levels")
    options.add_argument("--k", type=int, help="k-means clusters per saliency map")
    options.add_argument(
        "--area", type=float, nargs=2, metavar=("MIN", "MAX"), help="patch area fraction range"
    )
    options.add_argument(
        "--aspect", type=float, nargs=2, metavar=("MIN", "MAX"), help="patch aspect ratio range"
    )
    options.add_argument("--steps", type=int, help="optimiser steps")
    options.add_argument("--batch-size", type=int, help="normal images per step")
    options.add_argument("--lr", type=float, help="learning rate of the fine-tuned backbone stages")
    options.add_argument("--head-lr", type=float, help="learning rate of the head")
    options.add_argument("--trainable-stages", type=int, help="how many last backbone stages are fine-tuned")
    options.add_argument("--warmup-steps", type=int, help="head-only steps before the backbone trains")
    options.add_argument("--pretrained-decay", type=float, help="L2-SP strength towards the ImageNet weights")
    options.add_argument("--embedding", choices=EMBEDDINGS, help="features the Gaussian is fitted on")
    options.add_argument("--num-workers", type=int, help="DataLoader worker processes")
    options.add_argument("--seed", type=int, help="random seed")
    options.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    options.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    # The defaults live in the presets, not in argparse, so the help shows the cpu preset's.
    defaults = preset("cpu").to_dict()
    for action in options._group_actions:
        value = defaults.get(action.dest)
        if action.dest == "levels":
            action.help += " (cpu preset: the backbone's default layers)"
        elif action.dest == "num_levels":
            action.help += " (cpu preset: all levels)"
        elif value is not None and action.help is not None:
            text = " ".join(str(item) for item in value) if isinstance(value, list) else value
            action.help += f" (cpu preset: {text})"
    return parser


# Settings that a resumed run may change: they decide where and how fast it runs, not what it learns.
RUNTIME_FIELDS = ("device", "num_workers")

_OVERRIDES = (
    "augmentation",
    "head",
    "backbone",
    "image_size",
    "levels",
    "num_levels",
    "k",
    "area",
    "aspect",
    "steps",
    "batch_size",
    "lr",
    "head_lr",
    "trainable_stages",
    "warmup_steps",
    "pretrained_decay",
    "embedding",
    "num_workers",
    "seed",
    "device",
)


def configure_console_logging(verbose: bool) -> None:
    """Log this package's records to standard error, above INFO or DEBUG.

    A second call replaces the handler of the first, so a process that runs several commands
    does not print each record twice.
    """
    package_logger = logging.getLogger("cutswap")
    for old in [h for h in package_logger.handlers if getattr(h, "cutswap_console", False)]:
        package_logger.removeHandler(old)
    handler = logging.StreamHandler()
    handler.cutswap_console = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_console_logging(args.verbose)
    try:
        dataset = dataset_spec_from_args(args)
        overrides = {name: getattr(args, name) for name in _OVERRIDES}
        if args.area is not None:
            overrides["area"] = tuple(args.area)
        if args.aspect is not None:
            overrides["aspect"] = tuple(args.aspect)
        if args.no_amp:
            overrides["amp"] = False
        config = preset(args.preset, **overrides)
    except (ValueError, TypeError) as error:
        parser.error(str(error))

    given = [name for name, value in overrides.items() if value is not None]
    runtime = {name: overrides[name] for name in RUNTIME_FIELDS if overrides[name] is not None}
    ignored = [name for name in given if name not in runtime]
    if args.resume and ignored:
        logger.warning("--resume uses the saved configuration; ignoring %s", ", ".join(ignored))
    output = args.output or Path("runs") / f"{dataset[0]}-{config.augmentation}"
    try:
        metrics = train(
            config,
            dataset,
            output,
            resume=args.resume,
            overwrite=args.overwrite,
            saliency_cache_dir=args.saliency_cache,
            on_error=on_error_from_args(args),
            progress=not args.no_progress and sys.stderr.isatty(),
            runtime=runtime if args.resume else None,
        )
    except (FileExistsError, FileNotFoundError, ValueError, ImportError, FloatingPointError) as error:
        logger.error("%s", error)
        return 2
    except KeyboardInterrupt:
        logger.error("interrupted; finish the run with: python -m cutswap.train --output %s --resume", output)
        return 130

    summary = ", ".join(
        f"{group} {values['image_auroc']:.4f}" for group, values in metrics["per_group"].items()
    )
    print(f"image AUROC {metrics['image_auroc']:.4f}" + (f" ({summary})" if summary else ""))
    print(f"run directory: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
