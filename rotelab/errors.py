"""One error family: every problem a user can fix is a ``RotelabError``.

The CLI catches ``RotelabError`` in one place, prints its message as one line and exits 2;
any other exception is a bug in rotelab.
"""

from __future__ import annotations


class RotelabError(Exception):
    """A problem the user can fix; the message names it, what was expected and the fix."""


class InvalidInputError(RotelabError, ValueError):
    """Bad input: an unknown name, a malformed file, NaN, labels out of range, impossible settings."""


class StoreError(RotelabError):
    """A study directory that is missing files or was written by another version of rotelab."""


class RotelabWarning(UserWarning):
    """Something the user should know that did not stop the study (the CLI prints one line)."""


class DataWarning(RotelabWarning):
    """Data that trains, but likely not as the user meant (a constant feature, huge values)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C while jobs were training: ``stored`` of ``total`` jobs are safe in the store."""

    def __init__(self, stored: int, total: int):
        super().__init__(f"{stored} of {total} jobs stored")
        self.stored, self.total = stored, total


class JobFailedError(RotelabError):
    """A job failed where it ran (a Ray worker): the model's code raised, or its worker died
    more often than it is retried. The jobs already finished stay stored; a rerun resumes."""
