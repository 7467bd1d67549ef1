"""The user-facing error type shared by the command line and the window launcher."""


class UserError(Exception):
    """A problem the user can fix; printed as one line `error: ...`, exit code 2."""
