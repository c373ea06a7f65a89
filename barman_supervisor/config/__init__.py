"""Settings: one declared table of environment variables, read once at start.

Lives here: the table of every variable (name, scope, type, default, bounds, secret, meaning),
the reader of the environment (``*_FILE`` and ``NAME__SERVER`` included), the typed settings it
builds, and the one-line errors of bad input. Nothing else in the package reads ``os.environ``.

May import: ``errors``, ``crontab``, ``log``.
"""
