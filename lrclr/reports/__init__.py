"""Report text: ``text`` (reading, sentences, the length limit), ``labeler`` (what a report states
per finding) with its pattern tables ``finding_patterns``, the matcher ``edge_patterns`` (which
tries a pattern only where ``literal_starts`` says a match can open) and the per-text lookup
tables ``scopes``, and ``laterality`` (left and right swapped)."""
