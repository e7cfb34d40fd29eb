"""The one exception type for bad user input.

Anything the user can fix (a missing path, a corrupt image, an unknown config key, an impossible noise rate) is
raised as :class:`UserError`. The CLI prints its message as a single line on stderr and exits with code 2; the
Python API lets it propagate so that callers can catch it.
"""


class UserError(Exception):
    """Bad input that the user can fix. The message names the problem and the fix, on one line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
