"""Built-in protocols: ``file`` (local and mounted paths) and ``memory`` (in-process, for tests
and examples). Both register in the ``quorus.protocols`` entry-point group like any plugin."""
