"""barman-supervisor: the PID 1 of a Barman container."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("barman-supervisor")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
