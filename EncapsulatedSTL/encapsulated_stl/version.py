"""The package's version, in one place (pyproject.toml states it for pip)."""

__version__ = "0.1.0"
