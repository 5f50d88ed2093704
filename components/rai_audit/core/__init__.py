"""The artifact contract, cohorts, metrics and data/model loading shared by every step."""

from rai_audit.core._errors import ArtifactIntegrityError, RAIInputError

__all__ = ["ArtifactIntegrityError", "RAIInputError"]
