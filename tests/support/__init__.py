"""What tests share, in one place (tests never import each other): ``paths`` (repository, fixtures,
shared data), ``servers``, ``browser`` (the real app in chromium), ``postgres`` (a throwaway
server), ``app_pages`` (AppTest helpers), ``images``, ``stores``, ``explanations``, ``hostile_inputs``,
``timing`` and ``marks`` (markers checked against what a test needs). Fixtures are in ``tests/conftest.py``."""
