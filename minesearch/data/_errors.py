"""The error every data problem raises, naming the space-file field to fix."""

from __future__ import annotations


class DataError(ValueError):
    """Bad data or data settings, reported against the space-file field that caused it.

    A ValueError so that callers validating a whole config can treat it like any other bad value;
    `field` lets them attach the message to the right key (e.g. ``data.split``).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[type[DataError], tuple[str, str]]:
        """Raised in a Ray worker, it must unpickle in the driver (Ray re-raises it there)."""
        return type(self), (self.field, self.message)
