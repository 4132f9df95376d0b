"""Datasets: loading splits (ELPV, MVTec AD, VisA, plain folders) and reading images.

A loader returns a DatasetSplit of ImageRecords, paths and labels only. `read_images` then
decodes the files into one uint8 (N, S, S, 3) array.
"""

from .arguments import add_dataset_arguments, dataset_from_args, dataset_spec_from_args, on_error_from_args
from .elpv import ELPV_CELL_TYPES, ELPV_VARIANTS, load_elpv
from .images import ImageReadError, image_sources, read_image, read_images, read_mask, read_masks, to_rgb
from .layouts import load_folder, load_mvtec, load_visa
from .loading import DATASET_LOADERS, load_dataset
from .records import IMAGE_EXTENSIONS, DatasetSplit, ImageRecord, list_image_files

__all__ = [
    "DATASET_LOADERS",
    "ELPV_CELL_TYPES",
    "ELPV_VARIANTS",
    "IMAGE_EXTENSIONS",
    "DatasetSplit",
    "ImageReadError",
    "ImageRecord",
    "add_dataset_arguments",
    "dataset_from_args",
    "dataset_spec_from_args",
    "image_sources",
    "list_image_files",
    "load_dataset",
    "load_elpv",
    "load_folder",
    "load_mvtec",
    "load_visa",
    "on_error_from_args",
    "read_image",
    "read_images",
    "read_mask",
    "read_masks",
    "to_rgb",
]
