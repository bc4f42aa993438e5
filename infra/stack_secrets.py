"""Secret stack settings: read once by the program, kept as secret Outputs end to end."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class StackSecrets:
    """Values set with ``pulumi config set --secret``. All optional; absent ones are not wired."""

    spotify_client_secret: pulumi.Output[str] | None = None


def read_secrets(config: pulumi.Config) -> StackSecrets:
    """Read the secret settings of the current stack."""
    return StackSecrets(spotify_client_secret=config.get_secret("spotifyClientSecret"))
