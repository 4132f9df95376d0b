import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cutswap.backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LITE0_BN_EPS,
    RESNET18_WEIGHTS_FILE,
    backbone_features,
    convert_lite0_state_dict,
    create_backbone,
    default_layers,
    feature_layers,
    lite0_key_map,
    lite0_weights_path,
    normalize_images,
    resnet18_weights_path,
)

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def lite0():
    return create_backbone("efficientnet_lite0")


def _photo(image: np.ndarray, size: int = 224) -> torch.Tensor:
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    resized = F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    uint8 = resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return normalize_images(uint8)


def test_lite0_key_map_uses_every_tensor():
    import timm

    source = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    key_map = lite0_key_map()
    target_keys = set(timm.create_model("efficientnet_lite0", pretrained=False).state_dict())

    assert set(key_map) == set(source)
    assert set(key_map.values()) == target_keys
    assert len(set(key_map.values())) == len(key_map)


def test_lite0_loaded_tensors_equal_source(lite0):
    source = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    loaded = lite0.state_dict()
    for source_key, target_key in lite0_key_map().items():
        assert torch.equal(loaded[target_key], source[source_key]), source_key


def test_convert_rejects_unknown_keys():
    source = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    source["_extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="_extra.weight"):
        convert_lite0_state_dict(source)


def test_lite0_eval_mode_and_bn_eps(lite0):
    assert not lite0.training
    epsilons = {m.eps for m in lite0.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert epsilons == {LITE0_BN_EPS}


@pytest.mark.parametrize(
    ("photo", "classes"),
    [("chelsea", range(281, 286)), ("coffee", (967, 968, 504))],  # cats; espresso, cup, coffee mug
)
def test_lite0_classifies_photo(lite0, photo, classes):
    with torch.no_grad():
        logits = lite0(_photo(getattr(skimage_data, photo)()))
    assert int(logits.argmax()) in classes


def test_normalize_images_values():
    images = np.zeros((2, 4, 5, 3), dtype=np.uint8)
    images[1] = 255
    out = normalize_images(images)
    assert out.shape == (2, 3, 4, 5)
    assert out.dtype == torch.float32
    expected_low = -np.array(IMAGENET_MEAN) / np.array(IMAGENET_STD)
    expected_high = (1 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(out[0, :, 0, 0].numpy(), expected_low, rtol=1e-6)
    np.testing.assert_allclose(out[1, :, 3, 4].numpy(), expected_high, rtol=1e-6)
    assert torch.equal(normalize_images(torch.from_numpy(images)), out)


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (np.zeros((2, 4, 4, 3), dtype=np.float32), TypeError, "uint8"),
        (np.zeros((4, 4, 3), dtype=np.uint8), ValueError, r"\(B, H, W, 3\)"),
        (np.zeros((1, 3, 4, 4), dtype=np.uint8), ValueError, r"\(B, H, W, 3\)"),
        ([[0]], TypeError, "numpy array or torch tensor"),
    ],
)
def test_normalize_images_rejects(images, error, match):
    with pytest.raises(error, match=match):
        normalize_images(images)


def test_unknown_backbone_rejected():
    with pytest.raises(ValueError, match="efficientnet_lite0, resnet18"):
        create_backbone("vgg16")
    with pytest.raises(ValueError, match="unknown backbone"):
        default_layers("vgg16")


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18"])
def test_layers_exist_and_run_deepest_first(name):
    model = create_backbone(name, pretrained=False)
    modules = dict(model.named_modules())
    widths = {}

    def record(layer):
        return lambda module, inputs, output: widths.__setitem__(layer, output.shape[-1])

    handles = [modules[layer].register_forward_hook(record(layer)) for layer in default_layers(name)]
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    for handle in handles:
        handle.remove()

    assert [widths[layer] for layer in default_layers(name)] == [7, 14, 28, 56]
    assert set(feature_layers(name)) <= set(modules)


@pytest.mark.parametrize(("name", "dim"), [("efficientnet_lite0", 1280), ("resnet18", 512)])
def test_backbone_features_pooled(name, dim):
    model = create_backbone(name, pretrained=False)
    features = backbone_features(model, name)
    with torch.no_grad():
        out = features(torch.randn(2, 3, 64, 64))
    assert features.feature_dim == dim
    assert out.shape == (2, dim)


def test_backbone_features_match_classifier(lite0):
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pooled = backbone_features(lite0, "efficientnet_lite0")(images)
        logits = lite0(images)
    torch.testing.assert_close(lite0.classifier(pooled), logits, rtol=1e-4, atol=1e-4)


def test_resnet18_missing_weights_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / RESNET18_WEIGHTS_FILE
    assert resnet18_weights_path() == str(expected)
    with pytest.raises(FileNotFoundError, match=str(expected)):
        create_backbone("resnet18")
    assert not expected.exists()


def test_resnet18_reads_cached_weights(tmp_path, monkeypatch):
    from torchvision.models import resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(1)
    state = resnet18(weights=None).state_dict()
    path = tmp_path / "hub" / "checkpoints" / RESNET18_WEIGHTS_FILE
    path.parent.mkdir(parents=True)
    torch.save(state, path)

    model = create_backbone("resnet18")
    assert not model.training
    assert torch.equal(model.conv1.weight, state["conv1.weight"])


def test_random_init_reads_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = create_backbone("resnet18", pretrained=False)
    assert not model.training
    assert list(tmp_path.iterdir()) == []
