"""Many files at once: ``sources`` (files and folders, or one ZIP archive), ``preparing`` (the
per-file work a DataLoader worker runs: read, decode, letterbox, the gate's image checks),
``scoring`` (streaming batch scoring behind ``python -m lrclr predict`` and the Batch page),
``run_folder`` and ``distributed_run`` (archive runs into a folder, alone or under torchrun, with
resume and merge) and the output formats ``prediction_csv`` and ``prediction_parquet``."""
