"""The one exception type for user errors: the CLIs map it to a clear message and exit 2."""

from typing import Any


class RAIInputError(ValueError):
    """Bad input from the user: a missing column, a bad parameter, an unreadable file."""


class ArtifactIntegrityError(RAIInputError):
    """An artifact folder does not match its manifest, or comes from another run."""


def as_written(value: Any) -> Any:
    """A value for a message as the user wrote it: numpy scalars as Python ones (``0``, not
    ``np.int64(0)``), inside lists and tuples too."""
    if isinstance(value, (list, tuple)):
        return type(value)(as_written(v) for v in value)
    item = getattr(value, "item", None)
    return item() if callable(item) and getattr(value, "shape", None) == () else value
