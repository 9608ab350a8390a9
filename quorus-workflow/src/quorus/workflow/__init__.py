"""Quorus workflows: YAML transfer definitions validated, planned and run locally or on the
controller quorum."""
