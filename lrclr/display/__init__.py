"""Pictures for a reader: ``figures`` (overlays, charts, the exported PNG)."""
