import pytest
import torch

from cutswap.backbones import create_backbone
from cutswap.model import CutSwapNet, FrozenReference, embed_pair


@pytest.fixture(scope="module")
def net():
    return CutSwapNet("efficientnet_lite0", num_classes=5, trainable_stages=3)


def test_frozen_branch_matches_imagenet_backbone(net):
    reference = FrozenReference(net, ["blocks.4", "head"])
    with torch.no_grad():
        for parameter in net.stages[-1].parameters():
            parameter.add_(0.5)  # as if training had moved the fine-tuned stages
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    imagenet = create_backbone("efficientnet_lite0").eval()

    with torch.no_grad():
        trained, frozen = embed_pair(net.eval(), reference, images)
        x = net.normalize(images)
        x = imagenet.bn1(imagenet.conv_stem(x))
        for index, block in enumerate(imagenet.blocks):
            x = block(x)
            if index == 4:
                expected_block4 = x.mean(dim=(2, 3))
        expected_head = imagenet.bn2(imagenet.conv_head(x)).mean(dim=(2, 3))

    assert frozen.shape == (2, 112 + 1280)
    assert torch.allclose(frozen[:, :112], expected_block4, atol=1e-5)
    assert torch.allclose(frozen[:, 112:], expected_head, atol=1e-5)
    assert not torch.allclose(trained, expected_head, atol=1e-3)


def test_only_late_stages_train(net):
    backbone, head = net.trainable_parameters()

    trainable = {id(p) for p in backbone + head}
    for index, stage in enumerate(net.stages):
        for parameter in stage.parameters():
            assert parameter.requires_grad == (index >= net.first_trainable)
            assert (id(parameter) in trainable) == (index >= net.first_trainable)


def test_train_mode_keeps_batch_norm_frozen(net):
    net.train()

    for module in net.stages.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert not module.training
    assert net.head.training
    net.eval()


def test_forward_shapes(net):
    logits, embedding = net.eval()(torch.zeros(3, 3, 64, 64))

    assert logits.shape == (3, 5)
    assert embedding.shape == (3, 1280)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 1}, "num_classes must be at least 2"),
        ({"trainable_stages": 10}, "trainable_stages must be between 0 and 9"),
        ({"backbone": "vgg16"}, "unknown backbone 'vgg16'"),
    ],
)
def test_bad_network_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CutSwapNet(**{"pretrained": False, **kwargs})


def test_reference_rejects_unknown_stage(net):
    with pytest.raises(ValueError, match="frozen_stages must name stages"):
        FrozenReference(net, ["layer4"])
