"""Readers' verdicts on region-word pairs: ``store`` (the durable flag store and its exchange
formats), ``queue`` (which pair to judge next) and ``agreement`` (between annotators)."""
