"""The ``quorus`` command line."""
