"""Radiographs in: ``reading`` (PNG, JPEG, DICOM -> one normalised grayscale array) and
``input_check`` (is this a frontal chest film? the gate before any score is shown)."""
