"""Batched multi-layer LayerCAM: one forward and one backward pass for every requested layer.

LayerCAM (Jiang et al., "LayerCAM: Exploring Hierarchical Class Activation Maps for
Localization", IEEE TIP 2021) weights each activation element by the ReLU of the gradient of the
class score at that element, sums over channels and applies a ReLU:

    cam[h, w] = ReLU(sum_k ReLU(dS / dA[k, h, w]) * A[k, h, w])

Gradients come from ``torch.autograd.grad`` with respect to the hooked layer outputs, so the
caller's parameters never receive ``.grad`` and no weight gradients are computed.
"""

from __future__ import annotations

import difflib
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

Targets = Union[None, int, Sequence[int], torch.Tensor]

# Ranges at or below this value count as a constant map, which normalises to all zeros.
MIN_RANGE = 1e-12


def _resolve_targets(targets: Targets, logits: torch.Tensor) -> torch.Tensor:
    batch, classes = logits.shape
    if targets is None:
        return logits.argmax(dim=1)

    if isinstance(targets, int):
        result = torch.full((batch,), targets, dtype=torch.long, device=logits.device)
    else:
        result = torch.as_tensor(targets, device=logits.device)
        if result.is_floating_point() or result.is_complex() or result.dtype == torch.bool:
            raise TypeError(f"targets must be integer class indices, got dtype {result.dtype}")
        result = result.long().reshape(-1)
        if result.numel() != batch:
            raise ValueError(f"targets must have one class per image ({batch}), got {result.numel()}")

    if result.numel() and (int(result.min()) < 0 or int(result.max()) >= classes):
        raise ValueError(f"targets must be class indices in [0, {classes - 1}], got {result.tolist()}")
    return result


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map to [0, 1], turning a constant map (all zeros included) into zeros.

    Args:
        maps: (..., H, W) float tensor.

    Returns:
        Float tensor of the same shape with values in [0, 1]. Every map with a range above
        ``MIN_RANGE`` has minimum 0 and maximum 1.
    """
    flat = maps.flatten(start_dim=-2)
    low = flat.min(dim=-1, keepdim=True).values
    span = flat.max(dim=-1, keepdim=True).values - low
    scaled = torch.where(span > MIN_RANGE, (flat - low) / span.clamp_min(MIN_RANGE), torch.zeros_like(flat))
    return scaled.reshape(maps.shape)


class LayerCAM:
    """LayerCAM saliency maps at several layers of a classifier, computed in one pass.

    Use it as a context manager, so the forward hooks are removed on exit::

        with LayerCAM(model, ["layer4", "layer2"]) as cam:
            maps = cam(images)  # (B, 2, H, W), values in [0, 1]

    The model keeps its training mode and ``requires_grad`` flags. Put it in eval mode first:
    in training mode, batch norm mixes the images of a batch and updates its statistics.
    Calls work under ``torch.no_grad()`` and ``torch.inference_mode()`` and with frozen
    parameters. Each hooked module must run exactly once per forward pass.

    Args:
        model: Classifier mapping (B, 3, H, W) float images to (B, C) logits.
        layers: Names of modules in ``model.named_modules()``; maps are stacked in this order.

    Raises:
        ValueError: ``layers`` is empty, repeats a name, or names a module that does not exist.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str]) -> None:
        if isinstance(layers, str):
            layers = [layers]
        layers = list(layers)
        if not layers:
            raise ValueError("layers must name at least one module, got an empty list")
        if len(set(layers)) != len(layers):
            raise ValueError(f"layers must not repeat a name, got {layers}")

        modules = dict(model.named_modules())
        for name in layers:
            if name not in modules:
                close = difflib.get_close_matches(name, list(modules), n=3)
                hint = f"; close matches: {', '.join(close)}" if close else ""
                raise ValueError(f"layer {name!r} not found in {type(model).__name__}{hint}")

        self.model = model
        self.layers = layers
        self._modules = [modules[name] for name in layers]
        self._handles: List[RemovableHandle] = []
        self._outputs: Dict[int, torch.Tensor] = {}

    def __enter__(self) -> LayerCAM:
        self.close()
        for index, module in enumerate(self._modules):
            self._handles.append(module.register_forward_hook(self._make_hook(index)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the forward hooks and drop any stored activations."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._outputs.clear()

    def _make_hook(self, index: int):
        name = self.layers[index]

        def hook(module: nn.Module, inputs: object, output: object) -> Optional[torch.Tensor]:
            if not self._capturing:
                return None
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"layer {name!r} returned {type(output).__name__}; LayerCAM needs a tensor")
            if index in self._outputs:
                raise RuntimeError(
                    f"layer {name!r} ran twice in one forward pass; hook a module that runs once "
                    "(for example a whole block, not a shared activation)"
                )

            # The stored tensor stays untouched because the rest of the network gets a copy, so
            # in-place operations further on (ReLU(inplace=True), +=) cannot change it.
            self._outputs[index] = output
            return output.clone()

        return hook

    _capturing = False

    def raw(self, images: torch.Tensor, targets: Targets = None) -> List[torch.Tensor]:
        """Compute unnormalised LayerCAM maps at each layer's own resolution.

        Args:
            images: (B, 3, H, W) float tensor, normalised as the model expects. It is moved to the
                model's device.
            targets: None for each image's top-1 class, one class index for all images, or one
                index per image (sequence or tensor of length B).

        Returns:
            One (B, h_l, w_l) float tensor per layer, on the model's device, with values >= 0.
            A layer whose output does not affect the class score gives zeros.

        Raises:
            RuntimeError: The object is not entered, or a hooked layer did not run.
            TypeError: ``images`` is not a float tensor, or targets are not integers.
            ValueError: ``images`` is not (B, 3, H, W), or a target is out of range.
        """
        if not self._handles:
            raise RuntimeError("LayerCAM hooks are not registered: use 'with LayerCAM(model, layers) as cam'")
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            raise TypeError("images must be a float tensor (B, 3, H, W); convert uint8 with normalize_images")
        if images.ndim != 4:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")

        parameter = next(self.model.parameters(), None)
        if parameter is not None:
            images = images.to(parameter.device)

        # inference_mode(False) and enable_grad undo a caller's no_grad or inference_mode. A fresh
        # leaf that requires grad makes every layer output part of the graph, even when all
        # parameters are frozen.
        with torch.inference_mode(False), torch.enable_grad():
            inputs = images.detach().clone().requires_grad_(True)
            self._outputs.clear()
            self._capturing = True
            try:
                logits = self.model(inputs)
            finally:
                self._capturing = False

            try:
                missing = [self.layers[i] for i in range(len(self.layers)) if i not in self._outputs]
                if missing:
                    raise RuntimeError(f"layers {missing} did not run in the forward pass")
                if logits.ndim != 2:
                    raise ValueError(f"the model must return (B, C) logits, got {tuple(logits.shape)}")

                classes = _resolve_targets(targets, logits.detach())
                score = logits.gather(1, classes[:, None]).sum()
                activations = [self._outputs[i] for i in range(len(self.layers))]
                connected = [a for a in activations if a.requires_grad]
                found = iter(torch.autograd.grad(score, connected, allow_unused=True) if connected else ())
                gradients = [next(found) if a.requires_grad else None for a in activations]
            finally:
                self._outputs.clear()

        maps = []
        for activation, gradient in zip(activations, gradients):
            activation = activation.detach()
            if gradient is None:
                maps.append(activation.new_zeros(activation.shape[0], *activation.shape[2:]))
                continue
            maps.append(torch.relu((torch.relu(gradient) * activation).sum(dim=1)))
        return maps

    def __call__(self, images: torch.Tensor, targets: Targets = None) -> torch.Tensor:
        """Compute LayerCAM maps at every layer, resized to the input and scaled to [0, 1].

        Each raw map is resized bilinearly (``align_corners=False``) to the input size, then
        min-max normalised per image and per layer. A level with no positive evidence, whose map
        is all zero (or constant), stays all zero.

        Args:
            images: (B, 3, H, W) float tensor, normalised as the model expects.
            targets: None for each image's top-1 class, one class index for all images, or one
                index per image.

        Returns:
            (B, L, H, W) float32 tensor on the model's device, L = len(layers).
        """
        size = tuple(images.shape[-2:])
        levels = []
        for raw in self.raw(images, targets):
            resized = F.interpolate(raw[:, None].float(), size=size, mode="bilinear", align_corners=False)
            levels.append(normalize_maps(resized[:, 0]))
        return torch.stack(levels, dim=1)
