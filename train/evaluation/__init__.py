"""Measuring models: ``metrics`` (AUC with CIs, retrieval, localization), ``oof`` (out-of-fold
scores), ``map_specificity``, ``non_chest`` (the gate's test images) and ``report`` (the outputs)."""
