import numpy as np
import onnx
import onnxruntime
import pytest
from PIL import Image

from cutswap import Detector
from cutswap.config import preset
from cutswap.export import main
from cutswap.train import train


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("data")
    (root / "normal").mkdir()
    (root / "abnormal").mkdir()
    for index in range(16):
        stripes = (np.sin(np.arange(72) / 3.0) * 60 + 128)[None, :].repeat(72, 0)
        image = np.clip(stripes + rng.normal(0, 10, (72, 72)), 0, 255).astype(np.uint8)
        if index >= 12:
            image[20:36, 24:40] = 10
        Image.fromarray(image).save(root / ("normal" if index < 12 else "abnormal") / f"image{index:03d}.png")
    return ("folder", {"normal_dir": str(root / "normal"), "abnormal_dir": str(root / "abnormal"),
                       "test_ratio": 0.3, "seed": 0})


# random_swap scores with two standardised Mahalanobis distances (trained and frozen embeddings);
# none scores with one, on the frozen backbone.
@pytest.fixture(scope="module", params=["random_swap", "none"])
def run_dir(request, tmp_path_factory, dataset):
    output = tmp_path_factory.mktemp("runs") / request.param
    train(preset("smoke", augmentation=request.param, steps=3), dataset, output, progress=False)
    return output


def test_onnx_scores_match_detector(run_dir, tmp_path, capsys):
    path = tmp_path / "model.onnx"
    detector = Detector.load(run_dir, device="cpu")
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)

    status = main([str(run_dir), str(path)])

    assert status == 0
    assert "uint8 (B, 3, 64, 64)" in capsys.readouterr().out
    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = detector.score(images)
    # The batch axis is dynamic: batches of 5 and 2 both run.
    for batch in (images, images[:2]):
        (scores,) = session.run(None, {"images": np.ascontiguousarray(batch.transpose(0, 3, 1, 2))})
        assert scores.dtype == np.float64
        assert scores.shape == (len(batch),)
        np.testing.assert_allclose(scores, expected[:len(batch)], rtol=1e-4, atol=1e-4)


def test_onnx_graph_signature(run_dir, tmp_path):
    path = tmp_path / "model.onnx"

    main([str(run_dir), str(path)])

    model = onnx.load(str(path))
    (graph_input,) = model.graph.input
    (graph_output,) = model.graph.output
    assert graph_input.name == "images"
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = graph_input.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    assert [dim.dim_value for dim in dims[1:]] == [3, 64, 64]
    assert graph_output.name == "scores"
    assert graph_output.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert sorted(item.name for item in tmp_path.iterdir()) == ["model.onnx"]


def test_export_incomplete_run_fails(tmp_path, caplog):
    run_dir = tmp_path / "run"
    run_dir.mkdir()

    status = main([str(run_dir), str(tmp_path / "model.onnx")])

    assert status == 2
    assert "config.json not found" in caplog.text
    assert not (tmp_path / "model.onnx").exists()
