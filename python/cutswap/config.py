"""Training configuration and its presets.

A run's resolved configuration is written to `config.json` in its run directory, so a run can be
resumed, re-scored and compared without the command line that started it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

AUGMENTATIONS = ("cutswap", "random_swap", "cutpaste", "cutpaste_scar", "cutpaste_3way", "none")
HEADS = ("multiclass", "binary")
EMBEDDINGS = ("trained", "trained+frozen")
# 32 px is one cell of the deepest backbone stage (stride 32). The upper limit stops a typo such as
# 10000 from allocating hundreds of GB: 1,000 decoded RGB images take 3 GB at 1024 px.
MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 1024


@dataclass
class TrainConfig:
    """Everything that defines a training run, dataset excluded.

    Attributes:
        augmentation: how negatives are made: ``cutswap`` (saliency-guided swap, one negative per
            level), ``random_swap`` (the same swap with uniform anchors), ``cutpaste`` (binary),
            ``cutpaste_scar``, ``cutpaste_3way`` (normal, CutPaste, scar) or ``none`` (the frozen
            ImageNet backbone, no training).
        head: ``multiclass`` (normal plus one class per level) or ``binary`` (normal versus a
            negative of a randomly chosen level).
        backbone: ``efficientnet_lite0`` (offline default) or ``resnet18``.
        image_size: side of the square training and test images, in pixels.
        levels: saliency layers, deepest first; empty means the backbone's defaults.
        num_levels: use the first this many of `levels` (None: all of them).
        k: number of k-means clusters on each saliency map.
        area: range of the patch area as a fraction of the image area.
        aspect: range of the patch aspect ratio (height / width), drawn log-uniformly.
        steps: optimiser steps.
        batch_size: normal images per step; each brings one negative per level.
        lr: learning rate of the fine-tuned backbone stages.
        head_lr: learning rate of the projection head and classifier.
        trainable_stages: how many of the last backbone stages are fine-tuned.
        freeze_bn: keep the backbone's batch-norm statistics at their ImageNet values.
        warmup_steps: steps that train the head alone before the backbone stages join.
        weight_decay: L2 penalty of the head; the backbone is pulled towards its ImageNet
            weights by `pretrained_decay` instead.
        pretrained_decay: strength of the penalty on the distance of the fine-tuned weights from
            their ImageNet values (L2-SP); 0 turns it off.
        embedding: features the Gaussian is fitted on: ``trained`` (pooled output of the
            fine-tuned backbone) or ``trained+frozen`` (that, plus the scores of a Gaussian on the
            frozen ImageNet backbone's pooled features, added after standardisation on the
            training normals).
        frozen_stages: stages whose pooled ImageNet features feed the frozen Gaussian.
        translate: maximum shift of the weak augmentation, as a fraction of the image side.
        color_jitter: strength of the brightness and contrast jitter of the weak augmentation.
        saliency_batch_size: images per LayerCAM batch.
        eval_batch_size: images per batch when embedding.
        num_workers: DataLoader worker processes; 0 builds batches in the main process.
        seed: seed of everything random in the run.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        amp: mixed precision on CUDA.
        threshold_quantile: quantile of the training normals' held-out (5-fold) scores used as
            the threshold for users without defective images.
    """

    augmentation: str = "cutswap"
    head: str = "multiclass"
    backbone: str = "efficientnet_lite0"
    image_size: int = 128
    levels: List[str] = field(default_factory=list)
    num_levels: Optional[int] = None
    k: int = 3
    area: Tuple[float, float] = (0.02, 0.15)
    aspect: Tuple[float, float] = (0.3, 3.3)
    steps: int = 40
    batch_size: int = 16
    lr: float = 1e-3
    head_lr: float = 1e-2
    trainable_stages: int = 3
    freeze_bn: bool = True
    warmup_steps: int = 0
    weight_decay: float = 1e-4
    pretrained_decay: float = 0.0
    embedding: str = "trained+frozen"
    frozen_stages: List[str] = field(default_factory=lambda: ["blocks.3", "blocks.4", "blocks.5"])
    translate: float = 0.05
    color_jitter: float = 0.1
    saliency_batch_size: int = 16
    eval_batch_size: int = 64
    num_workers: int = 2
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    threshold_quantile: float = 0.99

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field and the accepted values."""
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(
                f"augmentation must be one of {', '.join(AUGMENTATIONS)}, got {self.augmentation!r}"
            )
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {', '.join(EMBEDDINGS)}, got {self.embedding!r}")
        if not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
            raise ValueError(
                f"image_size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels, "
                f"got {self.image_size}"
            )
        if not 1 <= self.k <= 256:
            raise ValueError(f"k must be between 1 and 256, got {self.k}")
        if self.num_levels is not None and self.num_levels < 1:
            raise ValueError(f"num_levels must be at least 1 or None for all levels, got {self.num_levels}")
        if not 0 < self.area[0] <= self.area[1] < 1:
            raise ValueError(f"area must be an increasing pair in (0, 1), got {tuple(self.area)}")
        if not 0 < self.aspect[0] <= self.aspect[1]:
            raise ValueError(
                f"aspect must be an increasing pair of positive ratios, got {tuple(self.aspect)}"
            )
        for name in ("steps", "warmup_steps", "num_workers", "trainable_stages"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.steps == 0 and self.augmentation != "none":
            raise ValueError(
                f"steps is 0, so augmentation {self.augmentation!r} would train nothing; pass a positive "
                "--steps, or --augmentation none for the untrained baseline"
            )
        for name in ("batch_size", "eval_batch_size", "saliency_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr < 0 or self.head_lr < 0:
            raise ValueError(f"learning rates must be 0 or more, got lr={self.lr}, head_lr={self.head_lr}")
        if not 0.0 <= self.translate < 0.5:
            raise ValueError(f"translate must be in [0, 0.5), got {self.translate}")
        if not 0.0 < self.threshold_quantile < 1.0:
            raise ValueError(f"threshold_quantile must be in (0, 1), got {self.threshold_quantile}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    def to_dict(self) -> Dict[str, Any]:
        """Return the configuration as JSON-ready values."""
        values = dataclasses.asdict(self)
        values["area"] = list(self.area)
        values["aspect"] = list(self.aspect)
        return values

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> TrainConfig:
        """Build a configuration from `to_dict()` output; unknown keys raise ValueError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown configuration keys {unknown}; this run was written by another cutswap version"
            )
        values = dict(values)
        for name in ("area", "aspect"):
            if name in values:
                values[name] = tuple(values[name])
        config = cls(**values)
        config.validate()
        return config

    def to_json(self) -> str:
        """Return the configuration as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


# Each preset only lists what differs from the TrainConfig defaults.
PRESETS: Dict[str, Dict[str, Any]] = {
    # The whole default ELPV job, saliency included, in about 15 minutes on a 2-core CPU.
    "cpu": {},
    # For a GPU: larger images, a long schedule, all levels.
    "paper": {
        "image_size": 256,
        "steps": 3000,
        "batch_size": 32,
        "saliency_batch_size": 64,
        "eval_batch_size": 128,
        "num_workers": 8,
    },
    # Seconds-long runs for tests and smoke checks; the accuracy is meaningless.
    "smoke": {
        "image_size": 64,
        "steps": 4,
        "batch_size": 4,
        "eval_batch_size": 16,
        "saliency_batch_size": 8,
        "num_workers": 0,
    },
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """Return the named preset with `overrides` applied and validated."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: expected one of {', '.join(PRESETS)}")
    values = {**PRESETS[name], **{key: value for key, value in overrides.items() if value is not None}}
    config = TrainConfig(**values)
    config.validate()
    return config
