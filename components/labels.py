"""One labels context, derived once per program and merged into every object's metadata."""

from __future__ import annotations

from dataclasses import dataclass

NAME = "app.kubernetes.io/name"
PART_OF = "app.kubernetes.io/part-of"
VERSION = "app.kubernetes.io/version"
COMPONENT = "app.kubernetes.io/component"
MANAGED_BY = "app.kubernetes.io/managed-by"
ENVIRONMENT = "vinylhound.dev/environment"


@dataclass(frozen=True)
class LabelContext:
    """The labels every object of one deployment shares (cloudposse null-label style)."""

    environment: str
    part_of: str = "vinylhound"

    def common(self) -> dict[str, str]:
        """Labels for objects that belong to no single workload (namespace, gateway, ...)."""
        return {PART_OF: self.part_of, MANAGED_BY: "pulumi", ENVIRONMENT: self.environment}

    def selector(self, name: str) -> dict[str, str]:
        """The stable subset used in selectors: never include the version here."""
        return {NAME: name, PART_OF: self.part_of}

    def workload(self, name: str, version: str, component: str) -> dict[str, str]:
        """Every label of one workload's objects. Istio's telemetry reads name and version."""
        return {
            **self.common(),
            **self.selector(name),
            VERSION: _label_value(version),
            COMPONENT: component,
        }


def _label_value(value: str) -> str:
    """Make an image tag or digest fit a label value (63 chars, no ':' or '@')."""
    cleaned = value.replace("@", "_").replace(":", "_")
    return cleaned[:63].strip("-_.") or "unknown"
