"""The project's user-facing error: the CLI prints its message (no traceback) and exits with status 2."""


class ReidError(Exception):
    """An error the user can act on; its message says what was expected."""
