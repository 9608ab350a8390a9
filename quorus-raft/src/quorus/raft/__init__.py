"""Quorus's Raft consensus backend. See ``docs/design/raft.md``."""
