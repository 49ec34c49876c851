"""Reading PNG, JPEG and DICOM radiographs into normalised grayscale (lrclr.imaging.reading)."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import HTJ2KLossless

from lrclr.errors import (
    CorruptImageError,
    EmptyFileError,
    ImageReadError,
    ImageTooLargeError,
    NoPixelDataError,
    UnsupportedCompressionError,
    UnsupportedFormatError,
)
from lrclr.imaging.reading import DEFAULT_MAX_PIXELS, LoadedImage, load_image, sniff_format
from tests.support.paths import TEST_DATA
from tests.support.images import dicom_bytes, encode, ramp

MONO2 = TEST_DATA / "siim_pneumothorax_example.dcm"
MONO1 = TEST_DATA / "monochrome1_example.dcm"
GRAY8 = TEST_DATA / "nih_00000075_128_gray8.png"
GRAY16 = TEST_DATA / "nih_00000075_128_gray16.png"
RGBA = TEST_DATA / "nih_00000075_128_rgba.png"
# What the real DICOMs carry that identifies the patient or study (checked with pydicom).
REAL_IDENTIFIERS = {
    "PatientName": "16d7f894-55d7-4d95-8957-d18987f0e981",
    "PatientID": "16d7f894-55d7-4d95-8957-d18987f0e981",
    "PatientSex": "M",
    "PatientAge": "62",
    "StudyDate": "19010101",
    "StudyInstanceUID": "1.2.276.0.7230010.3.1.2.8323329.6904.1517875201.850818",
    "SOPInstanceUID": "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819",
}


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


@pytest.fixture(scope="module")
def mono2() -> LoadedImage:
    return load_image(MONO2)


@pytest.fixture(scope="module")
def gray8() -> np.ndarray:
    return load_image(GRAY8).pixels


# --- real DICOMs -------------------------------------------------------------------------------


def test_real_monochrome2_dicom_decodes_with_bright_bone(mono2):
    assert mono2.source_format == "dicom"
    assert mono2.pixels.dtype == np.float32 and mono2.pixels.shape == (1024, 1024)
    assert mono2.pixels.min() == 0.0 and mono2.pixels.max() == 1.0
    assert mono2.original_size == (1024, 1024) and mono2.bits_stored == 8
    assert mono2.pixel_spacing_mm == (0.168, 0.168)
    assert mono2.warnings == ()
    # Air outside the body (corner) dark, mediastinum (centre) bright.
    assert mono2.pixels[:50, :50].mean() < 0.1 < 0.7 < mono2.pixels[480:540, 480:540].mean()
    header = mono2.header
    assert header["Modality"] == "CR" and header["View Position"] == "PA"
    assert header["Body Part Examined"] == "CHEST"
    assert header["Photometric Interpretation"] == "MONOCHROME2"
    assert header["Transfer Syntax"] == "JPEG Baseline (Process 1)"
    assert header["Pixel Spacing (mm)"] == "0.168, 0.168"


def test_real_monochrome1_dicom_is_inverted(mono2):
    # The two public files differ in one byte: the Photometric Interpretation. The stored pixels are
    # identical, so a correct MONOCHROME1 inversion gives exactly the negative of the MONOCHROME2 image.
    mono1 = load_image(MONO1)
    assert mono1.header["Photometric Interpretation"] == "MONOCHROME1"
    assert correlation(mono1.pixels, mono2.pixels) < -0.99
    np.testing.assert_allclose(mono1.pixels, 1.0 - mono2.pixels, atol=1e-6)


def test_monochrome1_storing_inverted_values_matches_monochrome2():
    # A true MONOCHROME1 export stores bone dark; after inversion it must equal the MONOCHROME2 view.
    stored = pydicom.dcmread(MONO2).pixel_array[::8, ::8]
    as_mono2 = load_image(dicom_bytes(stored))
    as_mono1 = load_image(dicom_bytes(255 - stored, PhotometricInterpretation="MONOCHROME1"))
    assert correlation(as_mono1.pixels, as_mono2.pixels) > 0.99
    np.testing.assert_allclose(as_mono1.pixels, as_mono2.pixels, atol=1e-6)


def test_identifiers_hidden_unless_asked(mono2):
    assert mono2.identifiers == {}
    shown = " ".join(list(mono2.header) + list(mono2.header.values()) + list(mono2.warnings))
    for value in REAL_IDENTIFIERS.values():
        if len(value) > 2:
            assert value not in shown
    assert not {"Patient Sex", "Patient Age", "PatientSex", "PatientAge"} & set(mono2.header)

    revealed = load_image(MONO2, include_identifiers=True)
    assert REAL_IDENTIFIERS.items() <= revealed.identifiers.items()
    assert revealed.header == mono2.header


def test_identifiers_never_in_error_messages(tmp_path):
    path = tmp_path / "cut.dcm"
    path.write_bytes(dicom_bytes(ramp())[:-500])
    with pytest.raises(CorruptImageError) as caught:
        load_image(path)
    assert "Doe" not in str(caught.value) and "MRN-0042" not in str(caught.value)


def test_synthetic_identifiers_only_on_request():
    data = dicom_bytes(ramp())
    assert load_image(data).identifiers == {}
    assert "Doe^Jane" not in str(load_image(data).header)
    identifiers = load_image(data, include_identifiers=True).identifiers
    assert identifiers["PatientName"] == "Doe^Jane" and identifiers["PatientID"] == "MRN-0042"


# --- typed, readable failures ----------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
def test_truncated_dicom_fixture_is_reported_as_truncated():
    with pytest.raises(CorruptImageError) as caught:
        load_image(TEST_DATA / "truncated_siim_20k.dcm")
    message = str(caught.value)
    assert message.startswith("truncated_siim_20k.dcm: ")
    assert "DICOM" in message and "truncated" in message
    assert "16d7f894" not in message


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
@pytest.mark.parametrize("keep", [300, 1000, 100_000, 127_280])
def test_dicom_cut_anywhere_after_its_header_is_corrupt(keep):
    with pytest.raises(CorruptImageError, match=r"^scan\.dcm: the DICOM file is truncated or damaged"):
        load_image(MONO2.read_bytes()[:keep], name="scan.dcm")


def test_zero_byte_file():
    with pytest.raises(EmptyFileError, match=r"^empty\.png: the file is empty \(0 bytes\)$"):
        load_image(TEST_DATA / "empty.png")
    with pytest.raises(EmptyFileError, match=r"^The file is empty"):
        load_image(b"")


def test_text_file_named_png():
    with pytest.raises(UnsupportedFormatError) as caught:
        load_image(TEST_DATA / "notes.png")
    assert str(caught.value) == "notes.png: this is not a PNG, JPEG or DICOM image (it looks like text)"


@pytest.mark.parametrize("data, hint", [
    (b"%PDF-1.7 ...", "PDF"), (b"PK\x03\x04rest", "ZIP"), (b"\x00\x01\x02\xff" * 40, "not recognised")])
def test_other_formats_are_named(data, hint):
    with pytest.raises(UnsupportedFormatError, match=hint):
        load_image(data, name="upload.bin")


def test_missing_file_is_a_typed_error(tmp_path):
    with pytest.raises(ImageReadError, match=r"^nothere\.png: the file was not found"):
        load_image(tmp_path / "nothere.png")


def test_truncated_jpeg_is_corrupt(gray8):
    jpeg = encode(Image.open(GRAY8), "JPEG")
    with pytest.raises(CorruptImageError, match=r"^chest\.jpg: the JPEG file is truncated or damaged"):
        load_image(jpeg[: len(jpeg) // 2], name="chest.jpg")


def test_truncated_png_is_corrupt():
    png = GRAY8.read_bytes()
    with pytest.raises(CorruptImageError, match=r"^chest\.png: the PNG file is truncated or damaged"):
        load_image(png[:2000], name="chest.png")


# --- PNG and JPEG pixel formats ----------------------------------------------------------------


def test_16_bit_png_uses_its_full_range(gray8):
    image = load_image(GRAY16)
    assert image.source_format == "png" and image.bits_stored == 16
    assert image.pixels.dtype == np.float32 and image.pixels.max() == 1.0
    assert correlation(image.pixels, gray8) > 0.99
    assert np.abs(image.pixels - gray8).max() <= 0.5 / 255 + 1e-6


def test_12_bit_data_in_a_16_bit_png_is_scaled_as_12_bit():
    values = ramp(high=4095)
    image = load_image(encode(Image.fromarray(values), "PNG"))
    assert image.bits_stored == 12 and image.pixels.max() == 1.0
    assert any("12-bit" in warning for warning in image.warnings)


def test_rgba_png_composites_transparency_over_black(gray8):
    image = load_image(RGBA)
    assert image.pixels.shape == (128, 128) and image.bits_stored == 8
    np.testing.assert_allclose(image.pixels[:, 16:], gray8[:, 16:], atol=1e-3)
    assert image.pixels[:, :16].max() == 0.0
    assert any("transparent" in warning for warning in image.warnings)


@pytest.mark.parametrize("mode, fmt", [
    ("P", "PNG"), ("LA", "PNG"), ("RGB", "PNG"), ("L", "JPEG"), ("RGB", "JPEG"), ("CMYK", "JPEG")])
def test_colour_and_palette_modes_give_the_same_luminance(gray8, mode, fmt):
    source = Image.open(GRAY8)
    converted = source.convert("RGB").quantize(64) if mode == "P" else source.convert(mode)
    image = load_image(encode(converted, fmt), name=f"chest.{fmt.lower()}")
    assert image.source_format == fmt.lower() and image.pixels.shape == (128, 128)
    assert correlation(image.pixels, gray8) > 0.98
    assert abs(float(image.pixels.mean()) - float(gray8.mean())) < 0.03


def test_wrong_extension_loads_by_content(tmp_path, gray8):
    path = tmp_path / "scan.dcm"
    path.write_bytes(GRAY8.read_bytes())
    image = load_image(path)
    assert image.source_format == "png"
    np.testing.assert_array_equal(image.pixels, gray8)


def test_bytes_path_and_uploaded_file_agree(gray8):
    class UploadedFile(io.BytesIO):  # Streamlit's upload is a BytesIO subclass with a name
        name = "upload.png"

    upload = UploadedFile(GRAY8.read_bytes())
    upload.read()  # another widget already consumed it
    for source in (GRAY8, str(GRAY8), GRAY8.read_bytes(), upload, open(GRAY8, "rb")):
        np.testing.assert_array_equal(load_image(source).pixels, gray8)
    with pytest.raises(EmptyFileError, match=r"^upload\.png: "):
        load_image(type("Empty", (io.BytesIO,), {"name": "/tmp/x/upload.png"})(b""))


# --- size guard --------------------------------------------------------------------------------


def png_header(width: int, height: int, *, with_idat: bool = False) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return data + (chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"") if with_idat else b"")


def test_huge_png_header_is_refused_before_decoding():
    assert DEFAULT_MAX_PIXELS >= 20_000_000
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match=r"^bomb\.png: the image is 40000 x 40000 pixels"):
        load_image(png_header(40000, 40000), name="bomb.png")
    assert time.perf_counter() - start < 0.1


def test_pillow_decompression_bomb_becomes_typed_error():
    # With our own guard lifted, Pillow's limit must still surface as our error, not Pillow's.
    with pytest.raises(ImageTooLargeError):
        load_image(png_header(40000, 40000, with_idat=True), name="bomb.png", max_pixels=10**12)


def test_huge_jpeg_header_is_refused():
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 60000, 50000, 1) + b"\x01\x11\x00"
    with pytest.raises(ImageTooLargeError, match="50000 x 60000"):
        load_image(b"\xff\xd8\xff\xe0\x00\x04ab" + sof + b"\xff\xd9", name="bomb.jpg")


def test_dicom_size_guard_uses_rows_and_columns():
    with pytest.raises(ImageTooLargeError, match=r"64 x 32 pixels"):
        load_image(dicom_bytes(ramp()), max_pixels=1000)


# --- DICOM structure and display pipeline ------------------------------------------------------


def test_multi_frame_dicom_shows_first_frame_with_warning():
    frames = np.stack([ramp(high=1000), np.full((32, 64), 7, np.uint16), np.zeros((32, 64), np.uint16)])
    image = load_image(dicom_bytes(frames))
    assert image.warnings == ("multi-frame DICOM (3 frames): showing frame 1",)
    np.testing.assert_allclose(image.pixels, ramp(high=1000) / 1000.0, atol=1e-6)


def test_dicom_without_pixel_data(tmp_path):
    ds = pydicom.dcmread(MONO2)
    del ds.PixelData
    for keyword in ("Rows", "Columns"):
        delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.BasicTextSRStorage
    path = tmp_path / "report.dcm"
    ds.save_as(path)
    with pytest.raises(NoPixelDataError, match=r"^report\.dcm: this DICOM file contains no image \(Basic Text SR"):
        load_image(path)


def test_dicom_header_without_pixel_data_says_so():
    ds = pydicom.dcmread(MONO2)
    del ds.PixelData
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(NoPixelDataError, match="no pixel data"):
        load_image(buffer.getvalue(), name="stripped.dcm")


def test_voi_lut_sequence_is_applied():
    stored = ramp(high=4095)
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 12]
    lut.add_new(0x00283006, "US", [0] * 2048 + [4095] * 2048)  # LUT Data: a threshold at 2048
    image = load_image(dicom_bytes(stored, BitsStored=12, HighBit=11, VOILUTSequence=[lut]))
    np.testing.assert_array_equal(image.pixels, (stored >= 2048).astype(np.float32))
    assert image.header["Window Applied"] == "VOI LUT from the file"


def test_rescale_then_window_in_hounsfield_units():
    stored = ramp(high=2048)  # HU = stored - 1024, from -1024 to 1024
    image = load_image(dicom_bytes(stored, RescaleSlope=1, RescaleIntercept=-1024,
                                   WindowCenter=40, WindowWidth=401))
    hu = stored.astype(np.float64) - 1024
    assert image.pixels[hu <= -160].max() == 0.0 and image.pixels[hu >= 241].min() == 1.0
    middle = np.abs(hu - 40) < 0.6
    np.testing.assert_allclose(image.pixels[middle], 0.5, atol=0.01)
    assert image.header["Window Applied"] == "window from the file (center 40, width 401)"


def test_invalid_window_falls_back_to_full_range_with_warning():
    image = load_image(dicom_bytes(ramp(), WindowCenter=100, WindowWidth=0))
    assert image.pixels.min() == 0.0 and image.pixels.max() == 1.0
    assert any("window could not be used" in warning for warning in image.warnings)


def test_rgb_dicom_is_converted_to_luminance():
    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(np.zeros((16, 32), np.uint8))))
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    rgb = np.zeros((16, 32, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    ds.PixelData = rgb.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer)
    image = load_image(buffer.getvalue())
    np.testing.assert_allclose(image.pixels, 0.299, atol=1e-6)
    assert image.warnings == ("colour DICOM converted to grayscale",)


def test_dicom_without_preamble_or_file_meta_loads():
    data = dicom_bytes(ramp(), implicit_file=True)
    assert data[128:132] != b"DICM" and sniff_format(data) == "dicom"
    image = load_image(data)
    assert image.source_format == "dicom" and image.pixels.shape == (32, 64)
    stripped = MONO2.read_bytes()[132:]  # file meta kept, preamble and magic removed
    assert load_image(stripped).pixels.shape == (1024, 1024)


def test_compression_without_a_decoder_is_named():
    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(ramp())))
    ds.file_meta.TransferSyntaxUID = HTJ2KLossless
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(UnsupportedCompressionError, match=r"^ht\.dcm: the image is compressed as High-Throughput"):
        load_image(buffer.getvalue(), name="ht.dcm")


def test_sniff_format_reads_magic_bytes_only():
    assert sniff_format(GRAY8.read_bytes()) == "png"
    assert sniff_format(encode(Image.open(GRAY8), "JPEG")) == "jpeg"
    assert sniff_format(MONO2.read_bytes()) == "dicom"
    assert sniff_format(b"Findings: normal") is None
    assert sniff_format(b"") is None
