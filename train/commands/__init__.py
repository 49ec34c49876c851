"""One module per ``python -m train`` command; each has ``add_arguments(parser)`` and ``run(args)``."""
