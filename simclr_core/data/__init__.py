"""Datasets by name, decoded once into uint8 tensors: `load_images(cfg.data, "train")` -> `ImageSet`.

Modules: catalog (names, Hub ids, statistics), locate (local files / Hub), decode (bytes -> square arrays),
cache (decoded arrays on disk), subset (class-balanced limits), images (`load_images`).
"""
from simclr_core.data.catalog import DATASETS, SPLITS, DatasetSpec, dataset_spec, native_image_size
from simclr_core.data.images import ImageSet, load_images
from simclr_core.data.locate import DataNotFoundError
from simclr_core.data.subset import balanced_subset

__all__ = ["DATASETS", "SPLITS", "DataNotFoundError", "DatasetSpec", "ImageSet", "balanced_subset",
           "dataset_spec", "load_images", "native_image_size"]
