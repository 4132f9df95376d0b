import numpy as np
import pytest
import torch

from cutswap.scoring import CombinedDensity, GaussianDensity, classification_metrics


def _normals(count=200, dim=16, seed=0):
    return np.random.default_rng(seed).normal(size=(count, dim))


def test_mahalanobis_of_mean_is_zero():
    density = GaussianDensity.fit(_normals())

    assert density.score(density.mean[None])[0] == pytest.approx(0.0, abs=1e-9)


def test_outlier_scores_higher():
    normals = _normals()
    density = GaussianDensity.fit(normals)

    scores = density.score(np.vstack([normals[:5], normals[:5] + 10.0]))

    assert scores[5:].min() > scores[:5].max()


@pytest.mark.parametrize(
    "embeddings, message",
    [
        (np.zeros(5), r"embeddings must be \(N, D\)"),
        (np.zeros((1, 4)), "at least 2 normal embeddings"),
        (np.full((4, 2), np.nan), "NaN or infinite"),
    ],
)
def test_bad_fit_inputs(embeddings, message):
    with pytest.raises(ValueError, match=message):
        GaussianDensity.fit(embeddings)


def test_score_rejects_wrong_width():
    density = GaussianDensity.fit(_normals(dim=4))

    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        density.score(np.zeros((2, 3)))


def test_combined_state_round_trip(tmp_path):
    embeddings = {"trained": _normals(seed=1), "frozen": _normals(dim=8, seed=2)}
    density = CombinedDensity.fit(embeddings)
    torch.save(density.state_dict(), tmp_path / "density.pt")

    restored = CombinedDensity.from_state_dict(torch.load(tmp_path / "density.pt", weights_only=True))

    assert np.allclose(restored.score(embeddings), density.score(embeddings))


def test_combined_standardises_each_part():
    embeddings = {"trained": _normals(seed=1), "frozen": _normals(dim=8, seed=2) * 1000.0}
    density = CombinedDensity.fit(embeddings)

    scores = density.score(embeddings)

    # Each standardised part has mean 0 on the training normals, so their sum does too.
    assert scores.mean() == pytest.approx(0.0, abs=1e-9)


def test_held_out_scores_exceed_in_sample():
    embeddings = {"trained": _normals(count=120, dim=40, seed=3)}
    in_sample = CombinedDensity.fit(embeddings).score(embeddings)

    held_out = CombinedDensity.held_out_scores(embeddings, folds=5, seed=0)

    assert held_out.shape == in_sample.shape
    assert held_out.mean() > in_sample.mean()


def test_metrics_on_separable_scores():
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9])

    metrics = classification_metrics(labels, scores)

    assert metrics["image_auroc"] == 1.0
    assert metrics["f1"] == 1.0
    assert 0.3 < metrics["threshold"] <= 0.8


def test_metrics_with_one_class_are_nan():
    metrics = classification_metrics(np.zeros(4), np.arange(4.0))

    assert np.isnan(metrics["image_auroc"])
