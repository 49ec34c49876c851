"""The model, read in pipeline order: ``config`` (what a model folder says it is), ``letterbox``
(image -> square input and back), ``towers`` and ``bert`` (image and text encoders), ``tokens``
(wordpieces <-> report words), ``regions`` (the significant-region selector), ``interaction``
(word <-> region attention), ``losses``, ``prompts`` and ``zero_shot`` (finding scores),
``calibration``, ``lrclr_model`` (the model itself), ``explain`` (typed results), ``device``,
``weights`` (model folders: safetensors only)."""
