"""Type stubs for plait.bench (the cases and the report are reached through ``plait bench``)."""
