"""A DICOM file as it goes into a shard: only the elements that decode the image, nothing about the patient.

A DICOM header carries the patient's name, ids, dates, institution and more, and a shard set is a
copy made to travel (to a cluster's file system). So the shard holds a new DICOM built from an
allowlist: the image pixel module, the LUTs and windows the decoder applies, and a few technical
fields the app shows as safe (modality, view, spacing). Anything a vendor adds is dropped by
default. The copy is checked by decoding it: the pixels must equal the original file's decode
exactly, or the caller stores the decoded pixels instead (still lossless).
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset

from lrclr.imaging.reading import load_image

KEPT_ELEMENTS = (
    # Image pixel module
    "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
    "PixelRepresentation", "PlanarConfiguration", "NumberOfFrames", "PixelAspectRatio", "SmallestImagePixelValue",
    "LargestImagePixelValue", "PixelPaddingValue", "PixelPaddingRangeLimit", "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths", "PixelData", "FloatPixelData", "DoubleFloatPixelData",
    # Palette colour
    *(f"{c}PaletteColorLookupTable{p}" for c in ("Red", "Green", "Blue") for p in ("Descriptor", "Data")),
    *(f"Segmented{c}PaletteColorLookupTableData" for c in ("Red", "Green", "Blue")),
    # Modality LUT, VOI LUT, presentation
    "ModalityLUTSequence", "RescaleSlope", "RescaleIntercept", "RescaleType", "VOILUTSequence", "WindowCenter",
    "WindowWidth", "VOILUTFunction", "PresentationLUTShape",
    # Technical fields that cannot identify a patient
    "SpecificCharacterSet", "SOPClassUID", "Modality", "ViewPosition", "ImageLaterality", "BodyPartExamined",
    "PixelSpacing", "ImagerPixelSpacing", "LossyImageCompression", "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
)


def minimal_dicom(data: bytes, key: str, pixels: np.ndarray) -> bytes | None:
    """``data`` with only ``KEPT_ELEMENTS``; None when that copy does not decode to ``pixels`` (the
    original's decode) exactly."""
    try:
        original = pydicom.dcmread(io.BytesIO(data), force=data[128:132] != b"DICM")
        syntax = original.file_meta.get("TransferSyntaxUID")
        if syntax is None:
            return None  # a bare dataset without file meta: its encoding is a guess; keep the pixels instead
        copy = Dataset()
        for keyword in KEPT_ELEMENTS:
            if keyword in original:
                copy[keyword] = original[keyword]
        copy.file_meta = FileMetaDataset()
        copy.file_meta.TransferSyntaxUID = syntax
        copy.file_meta.MediaStorageSOPClassUID = original.get("SOPClassUID", pydicom.uid.SecondaryCaptureImageStorage)
        # Derived from the shard key, not the original's instance UID (which identifies the study).
        copy.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["lrclr-shard", key])
        copy.SOPInstanceUID = copy.file_meta.MediaStorageSOPInstanceUID
        buffer = io.BytesIO()
        copy.save_as(buffer, enforce_file_format=True)
        stripped = buffer.getvalue()
        same = np.array_equal(load_image(stripped).pixels, pixels)
    except Exception:  # noqa: BLE001 - pydicom raises many kinds; any failure means: store the pixels instead
        return None
    return stripped if same else None
