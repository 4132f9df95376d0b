import gc
import weakref

import numpy as np
import pytest
import torch
from torch import nn

from cutswap.backbones import create_backbone, default_layers
from cutswap.layercam import LayerCAM, normalize_maps

SIZE = 64


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return create_backbone("resnet18", pretrained=False)


@pytest.fixture(scope="module")
def lite0():
    return create_backbone("efficientnet_lite0")


@pytest.fixture()
def images():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(3, 3, SIZE, SIZE, generator=generator)


class InplaceNet(nn.Module):
    """Small CNN whose hooked layers are followed by in-place ReLUs and an in-place add."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, stride=2)
        self.act2 = nn.ReLU(inplace=True)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        a = self.conv1(x)
        b = self.act1(a)
        c = self.conv2(b)
        c += 1.0
        return self.head(self.act2(c).mean(dim=(2, 3)))


class ReferenceNet(InplaceNet):
    """The same network without in-place operations."""

    def forward(self, x):
        a = self.conv1(x)
        b = torch.relu(a)
        c = self.conv2(b) + 1.0
        return self.head(torch.relu(c).mean(dim=(2, 3)))


def test_shape_and_range(resnet, images):
    layers = default_layers("resnet18")
    with LayerCAM(resnet, layers) as cam:
        maps = cam(images)
    assert maps.shape == (3, 4, SIZE, SIZE)
    assert maps.dtype == torch.float32
    assert float(maps.min()) >= 0.0
    assert float(maps.max()) <= 1.0
    peaks = maps.flatten(2).max(dim=2).values
    assert torch.all((peaks == 1.0) | (peaks == 0.0))


def test_maps_follow_layer_order(resnet, images):
    with LayerCAM(resnet, ["layer4", "layer2"]) as cam:
        both = cam(images)
    with LayerCAM(resnet, ["layer2"]) as cam:
        single = cam(images)
    torch.testing.assert_close(both[:, 1], single[:, 0])


def test_batched_equals_single(lite0, images):
    with LayerCAM(lite0, default_layers("efficientnet_lite0")) as cam:
        batched = cam(images)
        single = torch.cat([cam(images[i : i + 1]) for i in range(images.shape[0])])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-4)


def test_normalize_maps_constant_is_zero():
    maps = torch.stack([torch.zeros(4, 4), torch.full((4, 4), 3.0), torch.arange(16.0).reshape(4, 4)])
    out = normalize_maps(maps)
    assert torch.equal(out[0], torch.zeros(4, 4))
    assert torch.equal(out[1], torch.zeros(4, 4))
    assert float(out[2].min()) == 0.0
    assert float(out[2].max()) == 1.0


def test_level_without_evidence_is_zero(images):
    model = ReferenceNet().eval()
    with torch.no_grad():
        model.head.weight.fill_(-1.0)  # every class score falls as activations rise
    with LayerCAM(model, ["conv2", "conv1"]) as cam:
        raw = cam.raw(images)
        maps = cam(images)
    assert torch.equal(raw[0], torch.zeros_like(raw[0]))
    assert torch.equal(maps[:, 0], torch.zeros(3, SIZE, SIZE))


def test_unused_layer_gives_zero_map(images):
    model = ReferenceNet().eval()
    model.spare = nn.Conv2d(3, 2, 1)
    original_forward = model.forward
    model.forward = lambda x: (model.spare(x), original_forward(x))[1]  # spare's output is discarded
    with LayerCAM(model, ["spare", "conv1"]) as cam:
        maps = cam(images)
    assert torch.equal(maps[:, 0], torch.zeros(3, SIZE, SIZE))
    assert float(maps[:, 1].max()) == 1.0


def test_targets_change_maps(resnet, images):
    with LayerCAM(resnet, ["layer3"]) as cam:
        top1 = cam(images)
        with torch.no_grad():
            predicted = resnet(images).argmax(1)
        explicit = cam(images, targets=predicted.tolist())
        other = cam(images, targets=int((predicted[0] + 1) % 1000))
        as_tensor = cam(images, targets=predicted)
    torch.testing.assert_close(top1, explicit)
    torch.testing.assert_close(top1, as_tensor)
    assert not torch.allclose(top1[0], other[0])


@pytest.mark.parametrize(
    ("targets", "error", "match"),
    [
        ([1, 2], ValueError, "one class per image"),
        (1000, ValueError, r"\[0, 999\]"),
        ([0, -1, 2], ValueError, r"\[0, 999\]"),
        ([0.5, 1.0, 2.0], TypeError, "integer"),
    ],
)
def test_invalid_targets_rejected(resnet, images, targets, error, match):
    with LayerCAM(resnet, ["layer4"]) as cam, pytest.raises(error, match=match):
        cam(images, targets=targets)


def test_frozen_params_under_no_grad(resnet, images):
    flags = {name: p.requires_grad for name, p in resnet.named_parameters()}
    for parameter in resnet.parameters():
        parameter.requires_grad_(False)
    try:
        with LayerCAM(resnet, ["layer4", "layer1"]) as cam:
            with torch.no_grad():
                under_no_grad = cam(images)
            with torch.inference_mode():
                under_inference = cam(images)
    finally:
        for name, parameter in resnet.named_parameters():
            parameter.requires_grad_(flags[name])
    assert float(under_no_grad.amax(dim=(2, 3)).min()) == 1.0
    torch.testing.assert_close(under_no_grad, under_inference)


def test_model_state_unchanged(resnet, images):
    resnet.train()
    resnet.layer1.requires_grad_(False)
    flags = {name: p.requires_grad for name, p in resnet.named_parameters()}
    modes = {name: m.training for name, m in resnet.named_modules()}
    try:
        with LayerCAM(resnet, ["layer4"]) as cam:
            cam(images)
        assert {name: p.requires_grad for name, p in resnet.named_parameters()} == flags
        assert {name: m.training for name, m in resnet.named_modules()} == modes
        assert all(p.grad is None for p in resnet.parameters())
    finally:
        resnet.eval()
        resnet.layer1.requires_grad_(True)


def test_inplace_relu_matches_reference(images):
    inplace = InplaceNet().eval()
    reference = ReferenceNet().eval()
    reference.load_state_dict(inplace.state_dict())
    layers = ["conv1", "conv2", "act1"]
    with LayerCAM(inplace, layers) as cam:
        got = cam.raw(images)
    with LayerCAM(reference, layers[:2]) as cam:
        expected = cam.raw(images)
    torch.testing.assert_close(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1])
    assert float(got[0].max()) > 0.0
    with torch.no_grad():
        torch.testing.assert_close(inplace(images), reference(images))


def test_raw_matches_manual_formula(images):
    model = ReferenceNet().eval()
    x = images.clone().requires_grad_(True)
    a = model.conv1(x)
    score = model.head(torch.relu(model.conv2(torch.relu(a)) + 1.0).mean(dim=(2, 3)))
    classes = score.argmax(1)
    (gradient,) = torch.autograd.grad(score.gather(1, classes[:, None]).sum(), a)
    expected = torch.relu((torch.relu(gradient) * a).sum(1)).detach()
    with LayerCAM(model, ["conv1"]) as cam:
        (raw,) = cam.raw(images)
    torch.testing.assert_close(raw, expected)


def test_hooks_released_and_no_growth(resnet, images):
    layers = ["layer4", "layer2"]
    modules = dict(resnet.named_modules())
    before = {name: len(modules[name]._forward_hooks) for name in layers}
    with LayerCAM(resnet, layers) as cam:
        during = {name: len(modules[name]._forward_hooks) for name in layers}
        for _ in range(10):
            maps = cam(images[:1])
            assert cam._outputs == {}
        reference = weakref.ref(maps)
        del maps
        gc.collect()
        assert reference() is None
    after = {name: len(modules[name]._forward_hooks) for name in layers}
    assert during == {name: count + 1 for name, count in before.items()}
    assert after == before
    assert cam._handles == []


def test_hooks_released_on_error(resnet):
    modules = dict(resnet.named_modules())
    with pytest.raises(ValueError), LayerCAM(resnet, ["layer4"]) as cam:
        cam(torch.zeros(1, 3, SIZE))
    assert len(modules["layer4"]._forward_hooks) == 0
    assert cam._outputs == {}


@pytest.mark.parametrize(
    ("layers", "match"),
    [([], "at least one"), (["layer4", "layer4"], "repeat"), (["layer5"], "layer4")],
)
def test_invalid_layers_rejected(resnet, layers, match):
    with pytest.raises(ValueError, match=match):
        LayerCAM(resnet, layers)


def test_call_outside_context_rejected(resnet, images):
    cam = LayerCAM(resnet, ["layer4"])
    with pytest.raises(RuntimeError, match="with LayerCAM"):
        cam(images)


def test_shared_module_rejected(resnet, images):
    # BasicBlock applies its single relu module twice.
    with LayerCAM(resnet, ["layer1.0.relu"]) as cam, pytest.raises(RuntimeError, match="ran twice"):
        cam(images)


@pytest.mark.parametrize(
    ("name", "layer"), [("resnet18", "layer2"), ("resnet18", "layer4"), ("lite0", "blocks.2")]
)
def test_matches_grad_cam_package(name, layer, resnet, lite0, images):
    """Compare with pytorch_grad_cam.LayerCAM, one layer at a time.

    grad-cam min-max scales each map at the layer's resolution and then resizes it with
    cv2.resize, and for a single layer scales the result once more. We feed our raw maps through
    the same scale_cam_image calls, so the comparison checks the LayerCAM maps themselves.
    """
    grad_cam = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = resnet if name == "resnet18" else lite0
    with torch.no_grad():
        classes = model(images).argmax(1).tolist()

    with LayerCAM(model, [layer]) as cam:
        (raw,) = cam.raw(images)
    ours = scale_cam_image(scale_cam_image(raw.numpy(), (SIZE, SIZE)))

    with grad_cam.LayerCAM(model, [dict(model.named_modules())[layer]]) as reference:
        expected = reference(images, targets=[ClassifierOutputTarget(c) for c in classes])
    model.zero_grad(set_to_none=True)

    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=1e-4)
