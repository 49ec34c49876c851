"""Readers' verdicts on region-word pairs: ``records`` (pairs, verdicts, history entries and their
checks), ``store`` (the durable flag store) on one of two engines with one ``schema``
(``sqlite_engine``, ``postgres_engine``), ``exchange`` (CSV and JSON formats), ``queue`` (which pair
to judge next) and ``agreement`` (between annotators)."""
