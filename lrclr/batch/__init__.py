"""Many files at once: ``scoring`` (streaming batch scoring behind ``python -m lrclr predict`` and
the Batch page) and ``prediction_csv`` (the one CSV format both write)."""
