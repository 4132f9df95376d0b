"""Embedding images with a CutSwap network for the Gaussian density."""

from __future__ import annotations

import logging
from typing import Dict, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from .model import CutSwapNet, FrozenReference, embed_pair

logger = logging.getLogger(__name__)


@torch.no_grad()
def embed_images(
    net: CutSwapNet,
    reference: Optional[FrozenReference],
    images: np.ndarray,
    *,
    batch_size: int = 64,
    device: Optional[torch.device] = None,
    progress: bool = False,
    description: str = "embedding",
) -> Dict[str, np.ndarray]:
    """Embed (N, S, S, 3) uint8 images without augmentation.

    Returns:
        ``{"trained": (N, D) float32}`` and, when `reference` is given, ``"frozen": (N, D_f)``,
        the pooled ImageNet features of the reference stages.
    """
    device = device or torch.device("cpu")
    was_training = net.training
    net.eval()
    outputs: Dict[str, list] = {"trained": []}
    if reference is not None:
        outputs["frozen"] = []
    try:
        for start in tqdm(
            range(0, len(images), batch_size),
            desc=description,
            disable=not progress,
            unit="batch",
            leave=False,
        ):
            batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
            batch = batch.permute(0, 3, 1, 2).to(device)
            trained, frozen = embed_pair(net, reference, batch)
            outputs["trained"].append(trained.float().cpu().numpy())
            if frozen is not None:
                outputs["frozen"].append(frozen.float().cpu().numpy())
    finally:
        net.train(was_training)
    return {
        name: np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        for name, parts in outputs.items()
    }
