"""Typed errors with messages meant for the person using the app or the CLI.

Every failure a user can cause (a bad file, a bad model folder) is one of these, so the app and the
CLI can show ``str(error)`` as-is instead of a traceback.
"""


class LRCLRError(Exception):
    """Base class for errors whose message is written for a user."""


class ImageReadError(LRCLRError):
    """An image or DICOM file could not be read as a radiograph."""


class EmptyFileError(ImageReadError):
    """The file has zero bytes."""


class UnsupportedFormatError(ImageReadError):
    """The bytes are not a PNG, JPEG or DICOM image (whatever the file name says)."""


class CorruptImageError(ImageReadError):
    """The file claims a supported format but its contents are truncated or damaged."""


class ImageTooLargeError(ImageReadError):
    """The image declares more pixels than the size guard allows (decompression-bomb protection)."""


class NoPixelDataError(ImageReadError):
    """A DICOM file without an image in it (e.g. a structured report)."""


class UnsupportedCompressionError(ImageReadError):
    """A valid DICOM whose pixel data uses a compression no installed decoder handles (e.g. HTJ2K)."""


class ModelLoadError(LRCLRError):
    """A model folder is missing, incomplete or corrupt."""


class UnsafeWeightsError(ModelLoadError):
    """A weights file in a format that would need unpickling, which is refused."""


class AnnotationStoreError(LRCLRError):
    """The flag store cannot be opened or read: not a database, a newer schema, a bad import file."""
