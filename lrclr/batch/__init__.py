"""Many files at once: ``sources`` (files and folders, or one ZIP archive), ``preparing`` (what is
done to each file before the model: read, decode, letterbox), ``scoring`` (streaming batch scoring
behind ``python -m lrclr predict`` and the Batch page), ``prediction_csv`` (the one CSV format they
all write) and ``prediction_parquet``; an archive scored into a resumable folder, under ``torchrun``
or not: ``run_folder`` (manifest, parts, merge) and ``distributed_run`` (ranks and DataLoader)."""
