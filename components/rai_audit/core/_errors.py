"""The one exception type for user errors: the CLIs map it to a clear message and exit 2."""


class RAIInputError(ValueError):
    """Bad input from the user: a missing column, a bad parameter, an unreadable file."""


class ArtifactIntegrityError(RAIInputError):
    """An artifact folder does not match its manifest, or comes from another run."""
