"""cutswap: self-supervised image anomaly detection with saliency-guided CutSwap augmentation.

The public API is re-exported here. Submodules are imported on first use, so `import cutswap`
stays cheap in data-loader workers and command-line tools that need only part of the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> submodule that defines it.
_EXPORTS = {
    # Augmentation (Rust core).
    "SwapParams": "augment",
    "saliency_kmeans": "augment",
    "sample_swap": "augment",
    "sample_random_swap": "augment",
    "swap_patches": "augment",
    "cutswap": "augment",
    "derive_seed": "augment",
    "CutSwapTransform": "augment",
    # Saliency.
    "IMAGENET_MEAN": "backbones",
    "IMAGENET_STD": "backbones",
    "create_backbone": "backbones",
    "default_layers": "backbones",
    "feature_layers": "backbones",
    "normalize_images": "backbones",
    "LayerCAM": "layercam",
    "compute_saliency": "saliency",
    "saliency_cache": "saliency",
    # Data.
    "ImageRecord": "data",
    "DatasetSplit": "data",
    "load_dataset": "data",
    "load_elpv": "data",
    "load_mvtec": "data",
    "load_visa": "data",
    "load_folder": "data",
    "read_image": "data",
    "read_images": "data",
    # Training and scoring.
    "TrainConfig": "config",
    "train": "train",
    "GaussianDensity": "scoring",
    "Detector": "detector",
    "Prediction": "detector",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:
    from .augment import (
        CutSwapTransform,
        SwapParams,
        cutswap,
        derive_seed,
        saliency_kmeans,
        sample_random_swap,
        sample_swap,
        swap_patches,
    )
    from .backbones import (
        IMAGENET_MEAN,
        IMAGENET_STD,
        create_backbone,
        default_layers,
        feature_layers,
        normalize_images,
    )
    from .config import TrainConfig
    from .data import (
        DatasetSplit,
        ImageRecord,
        load_dataset,
        load_elpv,
        load_folder,
        load_mvtec,
        load_visa,
        read_image,
        read_images,
    )
    from .detector import Detector, Prediction
    from .layercam import LayerCAM
    from .saliency import compute_saliency, saliency_cache
    from .scoring import GaussianDensity
    from .train import train


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'cutswap' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
