"""The ELPV solar-cell dataset, read from the elpv-dataset package."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional

from .records import DatasetSplit, ImageRecord

ELPV_VARIANTS = ("literature", "any_defect")
ELPV_CELL_TYPES = ("mono", "poly")

_INSTALL_HINT = 'Install it with: pip install "cutswap[elpv]"'


def elpv_data_dir() -> Path:
    """Return the folder of the elpv-dataset package that contains labels.csv and images/.

    Raises:
        ModuleNotFoundError: The elpv-dataset package is not installed.
        FileNotFoundError: The package is installed but labels.csv is missing.
    """
    spec = importlib.util.find_spec("elpv_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the ELPV dataset needs the elpv-dataset package, which is not installed. {_INSTALL_HINT}",
            name="elpv_dataset",
        )
    data_dir = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not (data_dir / "labels.csv").is_file():
        raise FileNotFoundError(
            f"elpv-dataset is installed but {data_dir / 'labels.csv'} is missing; reinstall it. "
            + _INSTALL_HINT
        )
    return data_dir


def _read_labels(data_dir: Path) -> list[tuple[str, float, str]]:
    """Read labels.csv: whitespace-separated image path, defect probability and cell type."""
    rows = []
    labels_path = data_dir / "labels.csv"
    with open(labels_path, encoding="utf-8") as labels:
        for line_number, line in enumerate(labels, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3:
                raise ValueError(
                    f"{labels_path} line {line_number}: expected 3 columns (path, probability, type), "
                    f"found {len(fields)}: {line.strip()!r}"
                )
            relative_path, probability, cell_type = fields
            rows.append((str(data_dir / relative_path), float(probability), cell_type))
    return rows


def load_elpv(
    *, variant: str = "literature", cell_type: Optional[str] = None, seed: int = 42
) -> DatasetSplit:
    """Load the ELPV one-class split.

    Normal cells are those with defect probability 0. They are split in labels.csv order by
    ``sklearn.model_selection.train_test_split(test_size=0.25, random_state=seed)``, which gives
    1131 training and 377 test normals. The "literature" variant adds the 715 cells with
    probability 1 to the test set as anomalies and leaves out cells with probability 1/3 or 2/3,
    as published ELPV anomaly-detection results do. The "any_defect" variant uses the same normal
    split and counts every cell with probability above 0 as anomalous (1116 cells).

    A cell type filters the training and test sets after the split, so the mono and poly
    subsets together make up the full split.

    Args:
        variant: "literature" or "any_defect".
        cell_type: None for all cells, or "mono" or "poly".
        seed: random_state of the normal split. 42 gives the published split.

    Returns:
        The split. Each record's group is its cell type.

    Raises:
        ValueError: Invalid variant, cell type or seed.
        ModuleNotFoundError: The elpv-dataset package is not installed.
    """
    # Imported here so that `import cutswap.data` does not pay for importing scikit-learn.
    from sklearn.model_selection import train_test_split

    if variant not in ELPV_VARIANTS:
        raise ValueError(f"invalid ELPV variant {variant!r}: expected one of {', '.join(ELPV_VARIANTS)}")
    if cell_type is not None and cell_type not in ELPV_CELL_TYPES:
        raise ValueError(
            f"invalid ELPV cell type {cell_type!r}: "
            f"expected None (all cells) or one of {', '.join(ELPV_CELL_TYPES)}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"invalid seed {seed!r}: expected an integer in [0, 2**32)")

    rows = _read_labels(elpv_data_dir())
    normal_indices = [index for index, (_, probability, _) in enumerate(rows) if probability == 0.0]
    if variant == "literature":
        anomalous_indices = [index for index, (_, probability, _) in enumerate(rows) if probability == 1.0]
    else:
        anomalous_indices = [index for index, (_, probability, _) in enumerate(rows) if probability > 0.0]

    train_indices, test_normal_indices = train_test_split(normal_indices, test_size=0.25, random_state=seed)

    def make_records(indices: list[int], label: int) -> list[ImageRecord]:
        records = []
        for index in sorted(indices):
            path, _, row_cell_type = rows[index]
            if cell_type is None or row_cell_type == cell_type:
                records.append(ImageRecord(path=path, label=label, group=row_cell_type))
        return records

    train = make_records(train_indices, 0)
    test = make_records(test_normal_indices, 0) + make_records(anomalous_indices, 1)
    test.sort(key=lambda record: record.path)

    name = "elpv" if variant == "literature" else "elpv-any-defect"
    if cell_type is not None:
        name += f"-{cell_type}"
    if variant == "literature":
        anomalies = "anomalies are cells with defect probability 1; cells with 1/3 or 2/3 are left out"
    else:
        anomalies = (
            "anomalies are all cells with defect probability above 0 (1/3, 2/3 and 1), "
            "a variant of the published protocol"
        )
    description = (
        f"ELPV solar cells ({cell_type or 'mono and poly'}): normals are cells with defect probability 0, "
        f"split 75/25 by train_test_split(random_state={seed}); {anomalies}"
    )
    return DatasetSplit(name=name, train=train, test=test, flips=True, description=description)
