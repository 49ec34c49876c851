"""Training, evaluation, export and data preparation for LRCLR: ``python -m train <command>``."""
