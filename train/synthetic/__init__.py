"""Synthetic training data, used only by training and tests: ``phantoms`` (radiographs with masks and
reports; ``anatomy``, ``findings``, ``raster``, ``reports``) and ``composed_reports`` (reports for
NIH images assembled from real OpenI sentences)."""
