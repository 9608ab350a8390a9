"""The workflow package's contributions to Quorus's hooks."""
