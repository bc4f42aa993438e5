"""Derived views of the config: computed once, and always of the config they are asked about."""

from __future__ import annotations

from infra.config import PlatformConfig, parse_platform_config
from tests.test_config import baseline


def _config() -> PlatformConfig:
    return parse_platform_config(baseline(), "stacks/Pulumi.test.yaml")


def test_a_view_is_computed_once_and_then_returned_as_is() -> None:
    cfg = _config()
    assert cfg.enabled() is cfg.enabled()


def test_a_copy_with_other_services_does_not_see_the_originals_views() -> None:
    cfg = _config()
    names = cfg.enabled_names()
    disabled = cfg.services["user-service"].model_copy(update={"enabled": False})
    copy = cfg.model_copy(update={"services": {**cfg.services, "user-service": disabled}})
    assert "user-service" in names and "user-service" not in copy.enabled_names()
