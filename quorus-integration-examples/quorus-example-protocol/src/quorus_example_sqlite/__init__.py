"""An example third-party Quorus protocol plugin: files as blobs in SQLite databases.

It lives in its own top-level package and reaches Quorus only through the public API of
``quorus.core`` and the ``quorus.protocols`` entry point ``sqlite`` declared in its
``pyproject.toml``; nothing in Quorus imports it or knows its name.
"""

from quorus_example_sqlite.protocol import SqliteProtocol
from quorus_example_sqlite.store import require_token

__all__ = ["SqliteProtocol", "require_token"]
