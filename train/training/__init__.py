"""The training machinery: ``run_config``, ``fit`` and ``trainer`` (the loop, one process or many),
``batches`` (what each rank reads per step), ``objective`` (the one place the loss terms are
weighted and summed), ``checkpoint``, ``distributed``, ``feature_cache``, ``augment``, and the terms
beyond the model's own contrastive ones (``prompt_loss``, ``sentence_loss``, ``localization``,
``flag_loss``)."""
