"""Measuring models: ``model_evaluation`` (one pass: zero-shot AUC with CIs, retrieval) and
``localization`` (pointing game, IoU), ``metrics`` (AUC with CIs, retrieval, localization in plain
numpy), ``oof`` (out-of-fold scores), ``map_specificity``, ``non_chest`` (the gate's test images)
and ``report`` (the outputs)."""
