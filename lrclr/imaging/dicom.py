"""DICOM radiographs: parse, decode the first frame, apply the modality and VOI transforms, and keep
patient identifiers out of the header unless the caller asks for them.

The header shown by default is an allowlist of technical fields, so a field a vendor adds never
leaks by accident; pydicom's messages are shortened with their quoted parts dropped.
"""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi, pixel_array

from lrclr.errors import (
    CorruptImageError,
    NoPixelDataError,
    UnsupportedCompressionError,
    UnsupportedFormatError,
)

from lrclr.imaging.decoding import (
    LUMA, LoadedImage, ModalityValues, block_mean, check_size, decoded_scale_for, downsample_note, min_max, read_error, short_reason,
)

# Pixel Data tag as it appears on disk (little and big endian); used to tell truncation from absence.
_PIXEL_DATA_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


# Shown by default: technical fields that cannot identify a patient (an allowlist, so a field a
# vendor adds never leaks by accident).
_SAFE_FIELDS = {
    "Modality": "Modality", "ViewPosition": "View Position", "BodyPartExamined": "Body Part Examined",
    "ImageLaterality": "Laterality", "Rows": "Rows", "Columns": "Columns",
    "PixelSpacing": "Pixel Spacing (mm)", "ImagerPixelSpacing": "Imager Pixel Spacing (mm)",
    "PhotometricInterpretation": "Photometric Interpretation", "BitsAllocated": "Bits Allocated",
    "BitsStored": "Bits Stored", "WindowCenter": "Window Center", "WindowWidth": "Window Width",
    "RescaleSlope": "Rescale Slope", "RescaleIntercept": "Rescale Intercept",
    "NumberOfFrames": "Number of Frames", "Manufacturer": "Manufacturer", "ManufacturerModelName": "Model",
    "StudyDescription": "Study Description", "SeriesDescription": "Series Description",
    "LossyImageCompression": "Lossy Compression",
}


# Hidden unless asked for. Age and sex are clinically useful but, with dates, re-identify patients.
_IDENTIFYING_FIELDS = (
    "PatientName", "PatientID", "OtherPatientIDs", "IssuerOfPatientID", "PatientBirthDate",
    "PatientSex", "PatientAge", "PatientAddress", "AccessionNumber", "StudyID",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName",
    "DeviceSerialNumber", "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName",
    "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "StudyTime", "SeriesTime",
    "AcquisitionDateTime", "AcquisitionTime", "ContentTime", "PatientBirthTime", "OtherPatientNames",
    "PatientComments", "RequestingPhysician", "NameOfPhysiciansReadingStudy",
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
)


def load_dicom(data: bytes, name: str | None, max_pixels: int, include_identifiers: bool,
                max_decoded_pixels: int | None = None) -> LoadedImage:
    ds = _parse_dicom(data, name)
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        if _looks_truncated(ds, data):
            raise read_error(CorruptImageError, name,
                         "the DICOM file is truncated or damaged: it ends before the image data is complete")
        if "Rows" in ds:  # an image header without its image: stripped on export or cut short
            raise read_error(NoPixelDataError, name, "this DICOM file describes an image but contains no pixel "
                         "data (it may have been exported without pixels or cut short)")
        raise read_error(NoPixelDataError, name, f"this DICOM file contains no image ({_sop_class(ds) or 'no pixel data'})")
    rows, columns, frames = _geometry(ds, name)
    check_size(columns, rows, max_pixels, name)
    stored = _decode_first_frame(ds, name)
    factor = decoded_scale_for(columns, rows, max_decoded_pixels)
    if factor > 1:  # before the display pipeline's float copies; palette indices are not averaged
        palette = str(ds.get("PhotometricInterpretation", "")).strip().upper() == "PALETTE COLOR"
        stored = stored[::factor, ::factor].copy() if palette else block_mean(stored, factor)
    try:
        pixels, bits, notes, window, modality = _dicom_to_unit(stored, ds)
    except Exception as exc:  # e.g. a palette or LUT that does not fit the pixel values
        raise read_error(CorruptImageError, name,
                     f"the DICOM image could not be converted for display: {short_reason(exc)}") from exc
    warnings = [f"multi-frame DICOM ({frames} frames): showing frame 1"] if frames > 1 else []
    warnings += downsample_note(factor, columns, rows)
    header = _safe_header(ds)
    header["Window Applied"] = window
    return LoadedImage(
        pixels=pixels, original_size=(pixels.shape[1], pixels.shape[0]), source_format="dicom",
        bits_stored=bits, header=header,
        identifiers=_identifiers(ds) if include_identifiers else {},
        warnings=tuple(warnings + notes), pixel_spacing_mm=_scaled_spacing(_pixel_spacing(ds), factor),
        decoded_scale=factor, modality=modality,
    )


def _parse_dicom(data: bytes, name: str | None) -> pydicom.Dataset:
    has_preamble = data[128:132] == b"DICM"
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=not has_preamble)
    except Exception as exc:
        raise read_error(CorruptImageError, name, f"the DICOM file is truncated or damaged: {short_reason(exc)}") from exc
    if not has_preamble and "Rows" not in ds and not any(k in ds for k in _PIXEL_KEYWORDS):
        # A forced parse accepts almost anything; without image elements it was not DICOM after all.
        raise read_error(UnsupportedFormatError, name,
                     "this is not a PNG, JPEG or DICOM image (its contents are not recognised)")
    if "TransferSyntaxUID" not in ds.file_meta:
        # Preamble-less files often lack file meta; the encoding pydicom detected stands in for it.
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            pydicom.uid.ImplicitVRLittleEndian if implicit
            else pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian)
    return ds


def _looks_truncated(ds: pydicom.Dataset, data: bytes) -> bool:
    # pydicom drops an unfinished Pixel Data element with only a warning, so a cut-off file would
    # otherwise look like one that never had an image.
    if any(tag in data for tag in _PIXEL_DATA_TAGS):
        return True
    if not len(ds):
        return True
    last = ds.get_item(max(ds.keys()))
    value, length = getattr(last, "value", None), getattr(last, "length", 0)
    return isinstance(value, bytes) and length != 0xFFFFFFFF and len(value) < length


def _geometry(ds: pydicom.Dataset, name: str | None) -> tuple[int, int, int]:
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames") or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise read_error(CorruptImageError, name,
                     "the DICOM file is damaged: its image size (Rows/Columns) is missing or invalid") from exc
    return rows, columns, max(frames, 1)


def _decode_first_frame(ds: pydicom.Dataset, name: str | None) -> np.ndarray:
    syntax = ds.file_meta.TransferSyntaxUID
    try:
        decoder = pydicom.pixels.get_decoder(syntax)
    except NotImplementedError as exc:
        raise read_error(UnsupportedCompressionError, name,
                     f"the image is stored with an unknown transfer syntax ({syntax.name})") from exc
    if not decoder.is_available:
        raise read_error(UnsupportedCompressionError, name,
                     f"the image is compressed as {syntax.name}, which this installation cannot decode")
    try:
        # Only the first frame is decoded: a 200-frame series must not cost 200 frames of memory.
        return pixel_array(ds, index=0)
    except Exception as exc:
        raise read_error(CorruptImageError, name, f"the DICOM file is truncated or damaged: {short_reason(exc)}") from exc


def _dicom_to_unit(stored: np.ndarray, ds: pydicom.Dataset
                   ) -> tuple[np.ndarray, int, list[str], str, ModalityValues | None]:
    """Apply the display pipeline (modality LUT, VOI, photometric) and scale to [0, 1]; grayscale
    images also keep their modality values, for a viewer that windows in the file's units."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
    full_scale = 2.0**bits - 1
    if photometric == "PALETTE COLOR":
        stored = pydicom.pixels.apply_color_lut(stored, ds)
        full_scale = float(np.iinfo(stored.dtype).max)  # the palette's entries are 8 or 16 bit
    if stored.ndim == 3:  # colour is already display-ready: no window, only luminance
        luminance = np.clip(stored[..., :3].astype(np.float64) @ LUMA / full_scale, 0.0, 1.0)
        return luminance.astype(np.float32), bits, ["colour DICOM converted to grayscale"], "none (colour image)", None
    try:
        values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    except Exception:
        values = stored.astype(np.float64)  # a broken rescale still leaves a viewable image
    unit, window, notes = _apply_voi(values, ds)
    # MONOCHROME1 stores bone dark; a Presentation LUT Shape of INVERSE asks for the same flip.
    inverse = str(ds.get("PresentationLUTShape", "")).strip().upper() == "INVERSE"
    inverted = photometric == "MONOCHROME1" or (photometric == "MONOCHROME2" and inverse)
    if inverted:
        unit = 1.0 - unit
    return unit.astype(np.float32), bits, notes, window, _modality_values(values, ds, inverted)


def _modality_values(values: np.ndarray, ds: pydicom.Dataset, inverted: bool) -> ModalityValues:
    """The values and the file's windows as a viewer needs them; a malformed window is left out
    (the image stays viewable on its full range)."""
    windows, names = [], []
    function = str(ds.get("VOILUTFunction", "LINEAR")).strip().upper() or "LINEAR"
    smallest = 1 if function == "LINEAR" else 0  # as _window: narrower is invalid (PS3.3 C.11.2.1.2)
    try:
        centers, widths = _numbers(ds.get("WindowCenter")), _numbers(ds.get("WindowWidth"))
        explanations = _texts(ds.get("WindowCenterWidthExplanation"))
        for index, (center, width) in enumerate(zip(centers, widths)):
            if np.isfinite(center) and np.isfinite(width) and width >= smallest and width > 0:
                windows.append((center, width))
                names.append(explanations[index] if index < len(explanations) else "")
    except (TypeError, ValueError):
        windows, names = [], []
    lut_range = None
    try:
        if ds.get("VOILUTSequence"):
            entries, first = (int(v) for v in ds.VOILUTSequence[0].LUTDescriptor[:2])
            lut_range = (float(first), float(entries or 65536))  # 0 entries means 2^16 (PS3.3 C.11.2.1.1)
    except (AttributeError, TypeError, ValueError, IndexError):
        lut_range = None
    # The unit labels the viewer's sliders: letters, digits and spaces only (it is the file's text).
    rescale_type = re.sub(r"[^A-Za-z0-9 ]", "", str(ds.get("RescaleType", "") or "")).strip()[:16]
    unit = "HU" if rescale_type.upper() == "HU" or str(ds.get("Modality", "")).upper() == "CT" else (
        rescale_type or "stored value")
    return ModalityValues(values=np.nan_to_num(values).astype(np.float32), unit=unit, windows=tuple(windows),
                          window_names=tuple(names), voi_function=function, voi_lut_range=lut_range,
                          inverted=inverted)


def _numbers(value: Any) -> list[float]:
    """A DICOM element's value as numbers: multi-valued elements are sequences, single ones are not."""
    if value is None:
        return []
    items = value if not isinstance(value, (str, bytes)) and hasattr(value, "__len__") else [value]
    return [float(item) for item in items]


def _texts(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if not isinstance(value, (str, bytes)) and hasattr(value, "__len__") else [value]
    return [str(item).strip()[:64] for item in items]


def _apply_voi(values: np.ndarray, ds: pydicom.Dataset) -> tuple[np.ndarray, str, list[str]]:
    """Values in [0, 1] after the file's VOI LUT or window, else its full range."""
    if "VOILUTSequence" not in ds and not ("WindowCenter" in ds and "WindowWidth" in ds):
        return min_max(values), "none in the file: full pixel range", []
    try:
        result = _file_voi(values, ds)
    except Exception:
        result = None  # an unusable VOI must not make the image unreadable
    if result is None:
        return (min_max(values), "none: full pixel range",
                ["the file's display window could not be used: showing the full pixel range"])
    return result[0], result[1], []


def _file_voi(values: np.ndarray, ds: pydicom.Dataset) -> tuple[np.ndarray, str] | None:
    # The LUT is preferred over the window, as pydicom and most viewers do when both are present.
    if ds.get("VOILUTSequence"):
        lut = _lut_values(ds.VOILUTSequence[0])
        low, high = float(lut.min()), float(lut.max())
        if high > low:
            # pydicom indexes the LUT with the values; integral floats from a rescale are exact ints.
            indices = values.astype(np.int64) if np.array_equal(values, np.round(values)) else values
            mapped = np.asarray(apply_voi(indices, ds, index=0), dtype=np.float64)
            return np.clip((mapped - low) / (high - low), 0.0, 1.0), "VOI LUT from the file"
    if "WindowCenter" in ds and "WindowWidth" in ds:
        center, width = _first_number(ds.WindowCenter), _first_number(ds.WindowWidth)
        function = str(ds.get("VOILUTFunction", "LINEAR")).strip().upper()
        windowed = _window(values, center, width, function)
        if windowed is not None:
            return windowed, f"window from the file (center {center:g}, width {width:g})"
    return None


def _lut_values(item: pydicom.Dataset) -> np.ndarray:
    element = item["LUTData"]
    if isinstance(element.value, (bytes, bytearray)):
        entry_bits = int(item.LUTDescriptor[2])
        return np.frombuffer(element.value, dtype="<u2" if entry_bits > 8 else "u1")
    return np.atleast_1d(np.asarray(element.value, dtype=np.float64))


def _first_number(value: Any) -> float:  # a DS element's value: a number, or a MultiValue of them
    if not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
        value = value[0]  # several windows may be stored; the first is the default view
    return float(value)


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray | None:
    """DICOM PS3.3 C.11.2.1 VOI functions, output scaled to [0, 1]; None if the width is invalid."""
    if function == "SIGMOID":
        return None if width <= 0 else 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return None if width <= 0 else np.clip((values - center) / width + 0.5, 0.0, 1.0)
    if width < 1:
        return None
    if width == 1:
        return (values > center - 0.5).astype(np.float64)
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _scaled_spacing(spacing: tuple[float, float] | None, factor: int) -> tuple[float, float] | None:
    """Millimetres per decoded pixel: a downsampled pixel spans ``factor`` stored ones."""
    return None if spacing is None else (spacing[0] * factor, spacing[1] * factor)


def _pixel_spacing(ds: pydicom.Dataset) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        try:
            row, column = (float(v) for v in ds[keyword].value)
        except Exception:
            continue
        if row > 0 and column > 0:
            return row, column
    return None


def _sop_class(ds: pydicom.Dataset) -> str:
    # Only a registered class name is shown: a bare UID string tells a reader nothing.
    try:
        uid = ds.get("SOPClassUID")
        name = getattr(uid, "name", "")
    except Exception:
        return ""
    return "" if not name or name == str(uid) else name


def _safe_header(ds: pydicom.Dataset) -> dict[str, str]:
    header = {"Transfer Syntax": ds.file_meta.TransferSyntaxUID.name}
    if sop_class := _sop_class(ds):
        header["SOP Class"] = sop_class
    for keyword, label in _SAFE_FIELDS.items():
        try:
            value = ds[keyword].value if keyword in ds else None
        except Exception:
            continue
        text = _value_text(value)
        if keyword == "LossyImageCompression":
            text = {"00": "no", "01": "yes"}.get(text, text)
        if text:
            header[label] = text
    return header


def _value_text(value: object) -> str:
    if value is None or isinstance(value, (bytes, bytearray)):
        return ""
    if not isinstance(value, str) and hasattr(value, "__iter__"):
        return ", ".join(str(item) for item in value)[:200]
    return str(value).strip()[:200]


def _identifiers(ds: pydicom.Dataset) -> dict[str, str]:
    # Decoded from the raw bytes, bypassing pydicom's value validation, whose warnings quote the
    # value and would copy a patient's name into the logs.
    encodings = pydicom.charset.convert_encodings(ds.get("SpecificCharacterSet") or "ISO_IR 6")
    found: dict[str, str] = {}
    for keyword in _IDENTIFYING_FIELDS:
        if keyword not in ds:
            continue
        element = ds.get_item(keyword)
        value = element.value
        if isinstance(value, bytes):
            value = pydicom.charset.decode_bytes(value, encodings, set(b"\\^="))
        text = _value_text(value).strip(" \x00")
        if text:
            found[keyword] = text
    return found
