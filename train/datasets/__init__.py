"""Datasets behind one interface: each yields ``train.datasets.sample.Sample`` records.

NIH ChestX-ray14 (composed reports), OpenI, MIMIC-CXR, CheXpert, a generic CSV, phantoms, and any of
them written as WebDataset shards (``make-shards``, ``shards.ShardDataset``); see
``base.ImageReportDataset`` for the shared contract and ``factory.build_dataset`` for JSON specs.
"""

from train.datasets.base import (
    DatasetError, ImageReportDataset, SampleReadError, Transform, downscale_sample, item_generator,
)
from train.datasets.chexpert import CheXpertDataset
from train.datasets.csv_dataset import CSVDataset
from train.datasets.factory import KINDS, build_dataset
from train.datasets.mimic import MIMICCXRDataset
from train.datasets.nih import NIHDataset, read_bbox_csv
from train.datasets.openi import OpenIDataset
from train.datasets.phantom_dataset import PhantomDataset
from train.datasets.shards import ShardDataset

__all__ = [
    "CSVDataset", "CheXpertDataset", "DatasetError", "ImageReportDataset", "KINDS", "MIMICCXRDataset",
    "NIHDataset", "OpenIDataset", "PhantomDataset", "SampleReadError", "ShardDataset", "Transform", "build_dataset",
    "downscale_sample", "item_generator", "read_bbox_csv",
]
