"""Firm-wide MFA policy: whether MFA is required and which factor types may be used."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mfa_pipeline.domain.challenges import FactorType


@dataclass(frozen=True, slots=True)
class FirmPolicy:
    firm_id: str
    require_mfa: bool = False
    # Empty means every factor type is allowed.
    allowed_factors: frozenset[FactorType] = field(default_factory=frozenset)
    updated_at: float | None = None
    updated_by: str | None = None

    def allows(self, factor: FactorType) -> bool:
        return not self.allowed_factors or factor in self.allowed_factors
