"""Many files at once: ``sources`` (files and folders, or one ZIP archive), ``scoring`` (streaming
batch scoring behind ``python -m lrclr predict`` and the Batch page) and ``prediction_csv`` (the
one CSV format both write)."""
