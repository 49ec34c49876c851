"""The training machinery: ``run_config``, ``fit`` and ``trainer`` (the loop, one process or many),
``checkpoint``, ``distributed``, ``feature_cache``, ``augment``, and the loss terms beyond the
model's own (``prompt_loss``, ``sentence_loss``, ``localization``, ``flag_loss``)."""
