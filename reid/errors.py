"""The project's user-facing error: the CLI prints its message (no traceback) and exits with status 2."""


class ReidError(Exception):
    """An error the user can act on; its message says what was expected."""


class ConfigError(ReidError, ValueError):
    """A configuration problem, worded for the person who wrote the config (also `reid.config.ConfigError`).

    Defined in this leaf so that the method registry raises it without importing the `reid.config` package, whose
    loader imports the registry."""


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM: `ray job stop`, a pod's termination, `timeout`). A KeyboardInterrupt,
    so that what unwinds a Ctrl-C (Ray Train's and Tune's own handling of it) unwinds this the same way; the CLI
    prints one line and exits with status 143 (`reid.ray_runtime.stop_on_sigterm`)."""
