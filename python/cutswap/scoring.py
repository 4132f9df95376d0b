"""Gaussian density on embeddings: Ledoit-Wolf covariance and Mahalanobis distance scores."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.covariance import LedoitWolf
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

logger = logging.getLogger(__name__)


@dataclass
class GaussianDensity:
    """A multivariate Gaussian fitted to the embeddings of normal images.

    Attributes:
        mean: (D,) float64 mean embedding.
        precision: (D, D) float64 inverse of the Ledoit-Wolf shrunk covariance.
        shrinkage: the Ledoit-Wolf shrinkage coefficient in [0, 1].
    """

    mean: np.ndarray
    precision: np.ndarray
    shrinkage: float

    @classmethod
    def fit(cls, embeddings: np.ndarray) -> GaussianDensity:
        """Fit the Gaussian to (N, D) embeddings of clean normal images.

        Raises:
            ValueError: fewer than two embeddings, a wrong shape, or non-finite values.
        """
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings must be (N, D), got shape {embeddings.shape}")
        if embeddings.shape[0] < 2:
            raise ValueError(
                f"at least 2 normal embeddings are needed to fit the Gaussian, got {embeddings.shape[0]}; "
                "add more normal training images"
            )
        if not np.isfinite(embeddings).all():
            raise ValueError(
                "embeddings contain NaN or infinite values; the model diverged or the input is bad"
            )

        estimator = LedoitWolf().fit(embeddings)
        logger.info(
            "fitted Gaussian on %d embeddings of dimension %d (Ledoit-Wolf shrinkage %.4f)",
            embeddings.shape[0],
            embeddings.shape[1],
            estimator.shrinkage_,
        )
        return cls(
            mean=estimator.location_.astype(np.float64),
            precision=estimator.precision_.astype(np.float64),
            shrinkage=float(estimator.shrinkage_),
        )

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """Return the Mahalanobis distance of each (N, D) embedding, a (N,) float64 array."""
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"embeddings must be (N, {self.mean.shape[0]}) to match the fitted Gaussian, "
                f"got shape {embeddings.shape}"
            )
        centered = embeddings - self.mean
        squared = ((centered @ self.precision) * centered).sum(axis=1)
        return np.sqrt(np.maximum(squared, 0.0))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Return the statistics as tensors, loadable with `torch.load(weights_only=True)`."""
        return {
            "mean": torch.from_numpy(self.mean.copy()),
            "precision": torch.from_numpy(self.precision.copy()),
            "shrinkage": torch.tensor(self.shrinkage, dtype=torch.float64),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> GaussianDensity:
        """Rebuild a density from `state_dict()` output."""
        missing = {"mean", "precision", "shrinkage"} - set(state)
        if missing:
            raise ValueError(f"density statistics are missing {sorted(missing)}; the file is incomplete")
        return cls(
            mean=state["mean"].double().numpy(),
            precision=state["precision"].double().numpy(),
            shrinkage=float(state["shrinkage"]),
        )


def classification_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Compute image AUROC, AUPR, and F1 at the F1-optimal threshold.

    Args:
        labels: (N,) 0 for normal, 1 for anomalous.
        scores: (N,) anomaly scores, higher means more anomalous.

    Returns:
        `image_auroc`, `image_aupr`, `f1` and `threshold` (the score at which F1 is maximal);
        NaN for the ranking metrics when only one class is present.
    """
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    if len(np.unique(labels)) < 2:
        logger.warning("only one class among %d test images; AUROC, AUPR and F1 are undefined", len(labels))
        return {
            "image_auroc": float("nan"),
            "image_aupr": float("nan"),
            "f1": float("nan"),
            "threshold": float("nan"),
        }

    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    # The last precision/recall pair has no threshold.
    best = int(np.argmax(f1[:-1]))
    return {
        "image_auroc": float(roc_auc_score(labels, scores)),
        "image_aupr": float(average_precision_score(labels, scores)),
        "f1": float(f1[best]),
        "threshold": float(thresholds[best]),
    }


@dataclass
class ScoreNormalizer:
    """Mean and standard deviation of one Gaussian's scores on the training normals."""

    mean: float
    std: float

    @classmethod
    def fit(cls, scores: np.ndarray) -> ScoreNormalizer:
        """Fit on the (N,) scores of the training normals."""
        return cls(mean=float(np.mean(scores)), std=float(max(np.std(scores), 1e-12)))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Standardise (N,) scores: subtract the training mean, divide by the training deviation."""
        return (np.asarray(scores, dtype=np.float64) - self.mean) / self.std


@dataclass
class CombinedDensity:
    """Gaussians on one or more embeddings, combined into one anomaly score.

    With one embedding the score is its Mahalanobis distance. With several, each distance is
    standardised by its mean and standard deviation on the training normals and the results are
    summed, so no embedding dominates through its scale.
    """

    densities: dict[str, GaussianDensity]
    normalizers: dict[str, ScoreNormalizer]

    @classmethod
    def fit(cls, embeddings: dict[str, np.ndarray]) -> CombinedDensity:
        """Fit one Gaussian per named (N, D) embedding of the clean training normals."""
        densities = {name: GaussianDensity.fit(values) for name, values in embeddings.items()}
        normalizers = {
            name: ScoreNormalizer.fit(densities[name].score(values)) for name, values in embeddings.items()
        }
        return cls(densities=densities, normalizers=normalizers)

    def score_parts(self, embeddings: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Return the Mahalanobis distance of each named embedding, (N,) float64 each."""
        missing = sorted(set(self.densities) - set(embeddings))
        if missing:
            raise ValueError(f"embeddings {missing} are needed by the fitted density but were not given")
        return {name: density.score(embeddings[name]) for name, density in self.densities.items()}

    def score(self, embeddings: dict[str, np.ndarray]) -> np.ndarray:
        """Return the (N,) float64 anomaly scores, higher is more anomalous."""
        parts = self.score_parts(embeddings)
        if len(parts) == 1:
            return next(iter(parts.values()))
        return np.sum([self.normalizers[name](values) for name, values in parts.items()], axis=0)

    @staticmethod
    def held_out_scores(embeddings: dict[str, np.ndarray], folds: int = 5, seed: int = 0) -> np.ndarray:
        """Score each training normal with a density fitted on the other folds, (N,) float64.

        A Gaussian scores the images it was fitted on lower than new normal images, so a
        threshold taken from those in-sample scores flags too many normals. Held-out scores
        behave like scores of new normals. With fewer than ``2 * folds`` images, the in-sample
        scores are returned.
        """
        count = len(next(iter(embeddings.values())))
        if count < 2 * folds:
            logger.warning("only %d training normals; the threshold uses in-sample scores", count)
            return CombinedDensity.fit(embeddings).score(embeddings)

        order = np.random.default_rng(seed).permutation(count)
        scores = np.empty(count, dtype=np.float64)
        for part in np.array_split(order, folds):
            rest = np.setdiff1d(order, part)
            density = CombinedDensity.fit({name: values[rest] for name, values in embeddings.items()})
            scores[part] = density.score({name: values[part] for name, values in embeddings.items()})
        return scores

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Return the statistics as a flat dict of tensors, loadable with `weights_only=True`."""
        state: dict[str, torch.Tensor] = {}
        for name, density in self.densities.items():
            for key, value in density.state_dict().items():
                state[f"{name}.{key}"] = value
            state[f"{name}.score_mean"] = torch.tensor(self.normalizers[name].mean, dtype=torch.float64)
            state[f"{name}.score_std"] = torch.tensor(self.normalizers[name].std, dtype=torch.float64)
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> CombinedDensity:
        """Rebuild from `state_dict()` output."""
        names = sorted({key.rsplit(".", 1)[0] for key in state})
        if not names:
            raise ValueError("density statistics are empty; the run's density file is incomplete")
        densities = {}
        normalizers = {}
        for name in names:
            part = {
                key.rsplit(".", 1)[1]: value for key, value in state.items() if key.rsplit(".", 1)[0] == name
            }
            densities[name] = GaussianDensity.from_state_dict(part)
            if "score_mean" not in part or "score_std" not in part:
                raise ValueError(
                    f"density statistics of {name!r} lack score_mean/score_std; the file is incomplete"
                )
            normalizers[name] = ScoreNormalizer(float(part["score_mean"]), float(part["score_std"]))
        return cls(densities=densities, normalizers=normalizers)
