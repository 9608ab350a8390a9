from quorus.core.testing.fixtures import anyio_backend  # noqa: F401
