"""The project's user-facing error: the CLI prints its message (no traceback) and exits with status 2."""


class ReidError(Exception):
    """An error the user can act on; its message says what was expected."""


class ConfigError(ReidError, ValueError):
    """A configuration problem, worded for the person who wrote the config (also `reid.config.ConfigError`).

    Defined in this leaf so that the method registry raises it without importing the `reid.config` package, whose
    loader imports the registry."""
