"""Value types both targets share: an environment variable and the secret it may come from.

Target-neutral on purpose: the Kubernetes specs write them as container ``env`` entries
(``components.kubernetes.specs.env_entry``), the docker target resolves each secret reference to
its value as a secret Output. Nothing here knows a target.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SecretKeyRef:
    """A key of a named Secret; the only way a secret value reaches a container."""

    secret: str
    key: str


@dataclass(frozen=True)
class EnvVar:
    """One container environment variable: a plain value or a reference to a Secret key."""

    name: str
    value: str | None = None
    secret: SecretKeyRef | None = None

    def __post_init__(self) -> None:
        if (self.value is None) == (self.secret is None):
            raise ValueError(f"env {self.name}: set exactly one of value or secret")
