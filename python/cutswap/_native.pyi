"""Type stubs for the Rust extension `cutswap._native`; use `cutswap.augment` instead."""

from typing import List, Optional, Tuple

import numpy as np
import numpy.typing as npt

_Box = Tuple[int, int, int, int]
_Params = Tuple[_Box, _Box, float, int, Optional[str]]

__all__ = [
    "MAX_CLUSTERS",
    "cutswap_levels",
    "derive_seed",
    "kmeans_1d",
    "sample_random_swap",
    "sample_swap",
    "swap_patches",
]

MAX_CLUSTERS: int

def kmeans_1d(
    saliency: npt.NDArray[np.generic], k: int
) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]: ...
def sample_swap(
    saliency: npt.NDArray[np.generic],
    k: int,
    area: Tuple[float, float],
    aspect: Tuple[float, float],
    seed: int,
) -> _Params: ...
def sample_random_swap(
    height: int,
    width: int,
    area: Tuple[float, float],
    aspect: Tuple[float, float],
    seed: int,
) -> _Params: ...
def swap_patches(image: npt.NDArray[np.generic], box_a: _Box, box_b: _Box) -> npt.NDArray[np.generic]: ...
def cutswap_levels(
    image: npt.NDArray[np.generic],
    maps: npt.NDArray[np.generic],
    k: int,
    area: Tuple[float, float],
    aspect: Tuple[float, float],
    seed: int,
    mode: str,
) -> Tuple[npt.NDArray[np.generic], List[_Params]]: ...
def derive_seed(base_seed: int, indices: List[int]) -> int: ...
