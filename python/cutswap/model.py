"""The CutSwap network: an ImageNet backbone split into stages, a projection head and a classifier.

The backbone is cut into an ordered list of stages (stem, blocks, head convolution). The early
stages can then stay frozen while the late ones are fine-tuned, and the pooled output of any stage
can feed the Gaussian density. Only the classifier-free feature path is used here; the
ImageNet classifier of the backbone is dropped.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from .backbones import BACKBONES, IMAGENET_MEAN, IMAGENET_STD, create_backbone

logger = logging.getLogger(__name__)


def split_stages(model: nn.Module, name: str) -> Tuple[List[str], List[nn.Module]]:
    """Split an ImageNet classifier from `create_backbone` into its feature stages.

    Returns:
        Stage names and modules in forward order. EfficientNet-Lite0: ``stem`` (conv_stem, bn1),
        ``blocks.0`` to ``blocks.6`` and ``head`` (conv_head, bn2), output 1280 channels.
        ResNet-18: ``stem`` (conv1, bn1, relu, maxpool) and ``layer1`` to ``layer4``, output 512.
    """
    if name == "efficientnet_lite0":
        names = ["stem"] + [f"blocks.{i}" for i in range(len(model.blocks))] + ["head"]
        modules = [
            nn.Sequential(model.conv_stem, model.bn1),
            *model.blocks,
            nn.Sequential(model.conv_head, model.bn2),
        ]
        return names, modules
    if name == "resnet18":
        names = ["stem", "layer1", "layer2", "layer3", "layer4"]
        modules = [
            nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool),
            model.layer1,
            model.layer2,
            model.layer3,
            model.layer4,
        ]
        return names, modules
    raise ValueError(f"unknown backbone {name!r}: expected one of {', '.join(BACKBONES)}")


class CutSwapNet(nn.Module):
    """Backbone stages, a projection head and a linear classifier over normal and negative classes.

    Args:
        backbone: backbone name accepted by `create_backbone`.
        num_classes: 2 for the binary head, L + 1 for one class per saliency level.
        trainable_stages: how many of the last backbone stages are fine-tuned; the rest stay
            frozen at their ImageNet weights. 0 trains the head alone.
        head_dims: widths of the projection head's hidden layers.
        pretrained: load ImageNet weights (offline for efficientnet_lite0).
        freeze_bn: keep every backbone batch norm in eval mode during training, so the
            ImageNet running statistics are used and kept.
    """

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        num_classes: int = 5,
        trainable_stages: int = 3,
        head_dims: Sequence[int] = (512, 128),
        pretrained: bool = True,
        freeze_bn: bool = True,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(
                f"num_classes must be at least 2 (normal plus one negative class), got {num_classes}"
            )

        classifier = create_backbone(backbone, pretrained=pretrained)
        names, modules = split_stages(classifier, backbone)
        if not 0 <= trainable_stages <= len(modules):
            raise ValueError(
                f"trainable_stages must be between 0 and {len(modules)} for {backbone}, "
                f"got {trainable_stages}"
            )
        self.backbone_name = backbone
        self.stage_names = names
        self.stages = nn.ModuleList(modules)
        self.first_trainable = len(modules) - trainable_stages
        self.freeze_bn = freeze_bn
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        for index, stage in enumerate(self.stages):
            stage.requires_grad_(index >= self.first_trainable)

        width = _output_channels(self.stages)
        layers: List[nn.Module] = []
        for hidden in head_dims:
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
            width = hidden
        self.head = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)
        self.embedding_dim = _output_channels(self.stages)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Turn (B, 3, H, W) uint8 or [0, 1] float images into ImageNet-normalised floats."""
        if images.dtype == torch.uint8:
            images = images.float().div_(255.0)
        return (images - self.pixel_mean) / self.pixel_std

    def stage_outputs(
        self, images: torch.Tensor, names: Sequence[str] = ()
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Run the backbone on (B, 3, H, W) images.

        Returns:
            The (B, C) global-average-pooled output of the last stage, and the pooled (B, C_s)
            outputs of the stages named in `names`.
        """
        features = self.normalize(images)
        pooled: Dict[str, torch.Tensor] = {}
        for index, (name, stage) in enumerate(zip(self.stage_names, self.stages)):
            if index < self.first_trainable:
                # Frozen stages need no autograd graph, which saves memory and time on the CPU.
                with torch.no_grad():
                    features = stage(features)
            else:
                features = stage(features)
            if name in names:
                pooled[name] = features.mean(dim=(2, 3))
        return features.mean(dim=(2, 3)), pooled

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return (logits (B, num_classes), embedding (B, D)) for (B, 3, H, W) images."""
        embedding, _ = self.stage_outputs(images)
        return self.classifier(self.head(embedding)), embedding

    def trainable_parameters(self) -> Tuple[List[nn.Parameter], List[nn.Parameter]]:
        """Return (fine-tuned backbone parameters, head and classifier parameters)."""
        backbone = [p for stage in self.stages[self.first_trainable :] for p in stage.parameters()]
        head = list(self.head.parameters()) + list(self.classifier.parameters())
        return backbone, head

    def train(self, mode: bool = True) -> CutSwapNet:
        """Set training mode; frozen stages, and with `freeze_bn` all backbone batch norms, stay in eval."""
        super().train(mode)
        if mode:
            # A batch norm in training mode would update its running statistics even where no
            # gradient flows, which would silently change the frozen stages.
            for stage in self.stages[: self.first_trainable]:
                stage.eval()
            if self.freeze_bn:
                self.set_backbone_bn_eval()
        return self

    def set_backbone_bn_eval(self) -> None:
        """Put every batch norm of the backbone in eval mode so its running statistics stay ImageNet's."""
        for module in self.stages.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def _output_channels(stages: nn.ModuleList) -> int:
    channels = _stage_channels(stages[-1])
    if channels == 0:
        raise ValueError("could not infer the backbone's output width from its last batch norm")
    return channels


class FrozenReference(nn.Module):
    """ImageNet copies of the fine-tuned stages, so frozen-backbone features stay available.

    The stages before the first fine-tuned one are shared with the trained network, since they are
    never updated; only the later stages are kept twice. The copies are saved in the checkpoint, so
    scoring a saved run needs no ImageNet weights file.
    """

    def __init__(self, net: CutSwapNet, stage_names: Sequence[str]) -> None:
        super().__init__()
        unknown = [name for name in stage_names if name not in net.stage_names]
        if unknown or not stage_names:
            raise ValueError(
                f"frozen_stages must name stages of {net.backbone_name} ({', '.join(net.stage_names)}), "
                f"got {list(stage_names)}"
            )
        import copy

        self.names = list(stage_names)
        self.stages = nn.ModuleList(copy.deepcopy(stage) for stage in net.stages[net.first_trainable :])
        self.stages.requires_grad_(False)
        self.embedding_dim = sum(
            _stage_channels(net.stages[net.stage_names.index(name)]) for name in self.names
        )

    def forward(self, net: CutSwapNet, images: torch.Tensor) -> torch.Tensor:
        """Return the (B, D) concatenated pooled ImageNet features of the named stages."""
        return embed_pair(net, self, images)[1]


def embed_pair(
    net: CutSwapNet, reference: FrozenReference | None, images: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor | None]:
    """Embed (B, 3, H, W) images with the trained network and, if given, the frozen reference.

    The stages before the first fine-tuned one run once and feed both branches.

    Returns:
        The (B, D) pooled output of the trained network and the (B, D_f) concatenated pooled
        ImageNet features of the reference's stages (None without a reference).
    """
    wanted = set(reference.names) if reference is not None else set()
    pooled: Dict[str, torch.Tensor] = {}
    shared = net.normalize(images)
    for name, stage in zip(net.stage_names[: net.first_trainable], net.stages[: net.first_trainable]):
        shared = stage(shared)
        if name in wanted:
            pooled[name] = shared.mean(dim=(2, 3))

    trained = shared
    for stage in net.stages[net.first_trainable :]:
        trained = stage(trained)
    if reference is None:
        return trained.mean(dim=(2, 3)), None

    frozen = shared
    for name, stage in zip(net.stage_names[net.first_trainable :], reference.stages):
        frozen = stage(frozen)
        if name in wanted:
            pooled[name] = frozen.mean(dim=(2, 3))
    return trained.mean(dim=(2, 3)), torch.cat([pooled[name] for name in reference.names], dim=1)


def _stage_channels(stage: nn.Module) -> int:
    channels = 0
    for module in stage.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            channels = module.num_features
    return channels
