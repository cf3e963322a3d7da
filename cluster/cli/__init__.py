"""The ``garden`` command line."""

from cluster.cli._main import main

__all__ = ["main"]
