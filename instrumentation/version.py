"""The instrumentation distribution's own version: it ships apart from the server."""

__version__ = "0.1.0"
