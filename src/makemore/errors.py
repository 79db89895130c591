"""The one exception type for mistakes a user can make (bad path, bad file, bad option).

The CLI turns it into one sentence on stderr and exit code 2; library callers can catch it.
"""


class MakemoreError(Exception):
    """A user-facing error: its message is one clear sentence naming the problem and the file."""
