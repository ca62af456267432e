"""The server distribution's version.

``otelhouse`` is a namespace shared by two distributions (the server and
``otelhouse-instrumentation``), so neither owns an ``otelhouse/__init__.py``.
"""

__version__ = "0.1.0"
