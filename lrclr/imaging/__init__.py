"""Radiographs in: ``reading`` (``load_image``: PNG, JPEG, DICOM -> one normalised grayscale array,
dispatching to ``pillow_files`` and ``dicom``, which share ``decoding``'s rules) and ``input_check``
(is this a frontal chest film? the gate before any score is shown)."""
