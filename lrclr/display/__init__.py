"""Pictures for a reader: ``operations`` (OpenCV on what is shown: area resampling, CLAHE, mask
outlines), ``windowing`` (window/level in the image's own units, presets, drag windowing),
``orientation`` (display-only flip and rotate), ``marks`` and ``measurements`` (distance and the
cardiothoracic ratio), ``figures`` (overlays, colour bars, charts, the exported PNG), ``encoding``
(PNG bytes and data URIs, one encoder for every page) and ``case_report`` with its
``case_report_layout`` (the one-page PDF and PNG report, drawn with matplotlib)."""
