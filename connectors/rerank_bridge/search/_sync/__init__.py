"""The sync client and connector, generated from _async/ by `python connectors/generate_sync.py`."""
