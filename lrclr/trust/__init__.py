"""How far to trust what the model shows: ``reliability`` (per-finding evidence from the model
card), ``case_findings`` (findings beside the report, the case export), ``findings_table`` (the
findings table's cells, marks and legend, on screen and in the case report), ``map_checks`` (does a map
depend on the text), ``counterfactual`` and ``faithfulness`` (live probes), ``card_tables`` (the
card's evaluations as tables) and ``tour`` (the demo tour, written from the card)."""
