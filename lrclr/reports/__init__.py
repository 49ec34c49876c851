"""Report text: ``text`` (reading, sentences, the length limit), ``labeler`` (what a report states
per finding) with its pattern tables ``finding_patterns`` and the matcher ``edge_patterns``, and
``laterality`` (left and right swapped)."""
