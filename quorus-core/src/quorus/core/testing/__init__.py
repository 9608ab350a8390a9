"""Test support for Quorus and its plugins.

- :class:`ProtocolConformance`: the protocol conformance kit, a pytest suite any protocol
  plugin runs against its own server by subclassing it and providing a
  ``conformance_target`` fixture.
- :mod:`quorus.core.testing.fixtures`: the ``anyio_backend`` fixture (asyncio and trio) and
  small helpers (free ports, deterministic payloads).
"""

from quorus.core.testing.conformance import ConformanceTarget, ProtocolConformance
from quorus.core.testing.fixtures import free_port, payload_bytes

__all__ = ["ConformanceTarget", "ProtocolConformance", "free_port", "payload_bytes"]
