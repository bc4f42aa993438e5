"""The Pulumi program: stack config -> validated ``PlatformConfig`` -> the platform -> exports.

This is the only module that reads ``pulumi.Config``. Invalid config raises before any resource
is registered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from infra.config import (
    CONFIG_NAMESPACE,
    ConfigError,
    PlatformConfig,
    Problem,
    stack_file,
    validate_stack,
)
from infra.stack_secrets import StackSecrets, read_secrets
from infra.targets import docker, kubernetes

Target = Callable[[PlatformConfig, StackSecrets], dict[str, Any]]

TARGETS: dict[str, Target] = {"kubernetes": kubernetes.deploy, "docker": docker.deploy}


def load_config() -> PlatformConfig:
    """The current stack's validated config; ``ConfigError`` names the stack file and fields."""
    stack = pulumi.get_stack()
    source = stack_file(stack)
    # The raw settings, not pulumi.Config: get_object raises a JSON traceback on a plain string,
    # and get() warns on a secret.
    cfg = validate_stack(
        stack, runtime_config.get_config, runtime_config.is_config_secret, runtime_config.CONFIG.get().keys()
    )
    if cfg.target not in TARGETS:
        raise ConfigError(source, [Problem("target", f"no {cfg.target!r} target in this program")])
    return cfg


def main() -> None:
    """Run the program for the current stack."""
    try:
        cfg = load_config()
    except ConfigError as err:
        # RunError prints the message without a traceback; nothing has been registered yet.
        raise pulumi.RunError(str(err)) from None
    exports = TARGETS[cfg.target](cfg, read_secrets(pulumi.Config(CONFIG_NAMESPACE)))
    for key, value in exports.items():
        pulumi.export(key, value)
