"""The domain: what the instance does, as operations that take a database session (or the
process's resources) and plain values, never a request. Pages, the REST API, the command
line and the worker all call these. Imports ``server.runtime``, ``models`` and
``federation``; never ``server.web``, Quart or werkzeug."""
