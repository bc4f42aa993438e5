"""Stack config: strict shape, per-environment rules, one line per problem, nothing registered."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from infra.config import ConfigError, parse_platform_config
from infra.program import main as program
from ops.cli import app
from ops.mockrun import ProgramError, run_offline

SOURCE = "stacks/Pulumi.prod.yaml"


def baseline() -> dict[str, Any]:
    """A valid prod config; each test changes one thing."""
    image = {"tag": "1.0.0"}
    scaling = {"minReplicas": 3, "maxReplicas": 6}
    return {
        "environment": "prod",
        "domain": "vinylhound.app",
        "imageRegistry": "ghcr.io/vinylhound",
        "services": {
            "monolith": {"image": image, "autoscaling": scaling},
            "user-service": {"image": image, "autoscaling": scaling},
        },
        "databases": {
            "backup": {"destinationPath": "s3://backups/prod", "credentialsSecret": "backup-credentials"}
        },
    }


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_platform_config(raw, SOURCE)
    return caught.value.lines()


def test_baseline_is_valid() -> None:
    assert parse_platform_config(baseline(), SOURCE).environment == "prod"


def test_unknown_key_is_named_with_file_and_path() -> None:
    raw = baseline()
    raw["services"]["user-service"]["replicaz"] = 3
    assert problems(raw) == [
        "stacks/Pulumi.prod.yaml: vinylhound:platform.services.user-service.replicaz: unknown key"
    ]


def test_snake_case_keys_are_unknown() -> None:
    raw = baseline()
    raw["image_registry"] = raw.pop("imageRegistry")
    assert any(line.endswith("vinylhound:platform.image_registry: unknown key") for line in problems(raw))


def test_wrong_type_is_rejected() -> None:
    raw = baseline()
    raw["services"]["user-service"]["enabled"] = "yes"
    assert problems(raw) == [
        "stacks/Pulumi.prod.yaml: vinylhound:platform.services.user-service.enabled: "
        "Input should be a valid boolean"
    ]


def test_latest_tag_is_rejected() -> None:
    raw = baseline()
    raw["services"]["user-service"]["image"] = {"tag": "latest"}
    (line,) = problems(raw)
    assert line.startswith("stacks/Pulumi.prod.yaml: vinylhound:platform.services.user-service.image.tag: ")
    assert "'latest' is not pinned" in line


def test_missing_tag_is_rejected() -> None:
    raw = baseline()
    raw["services"]["user-service"]["image"] = {}
    assert problems(raw) == [
        "stacks/Pulumi.prod.yaml: vinylhound:platform.services.user-service.image: "
        "pin the image with a tag or a digest"
    ]


def test_digest_alone_pins_an_image() -> None:
    raw = baseline()
    raw["services"]["user-service"]["image"] = {"digest": "sha256:" + "a" * 64}
    cfg = parse_platform_config(raw, SOURCE)
    assert cfg.services["user-service"].image.reference("r.io/x", "u") == "r.io/x/u@sha256:" + "a" * 64


def test_replicas_below_the_environment_minimum_are_rejected() -> None:
    raw = baseline()
    raw["environment"] = "staging"
    raw["services"]["user-service"] = {"image": {"tag": "1.0.0"}, "replicas": 1}
    assert problems(raw) == [
        "stacks/Pulumi.prod.yaml: vinylhound:platform.services.user-service.replicas: "
        "1 is below the staging minimum of 2"
    ]


def test_prod_requires_autoscaling() -> None:
    raw = baseline()
    raw["services"]["user-service"] = {"image": {"tag": "1.0.0"}, "replicas": 3}
    assert problems(raw) == [
        "stacks/Pulumi.prod.yaml: vinylhound:platform.services.user-service.autoscaling: "
        "prod requires autoscaling for every enabled workload"
    ]


def test_unknown_workload_is_rejected() -> None:
    raw = baseline()
    raw["services"]["billing-service"] = {"image": {"tag": "1.0.0"}}
    (line,) = problems(raw)
    assert line.startswith(
        "stacks/Pulumi.prod.yaml: vinylhound:platform.services.billing-service: unknown workload"
    )


def test_every_problem_is_reported_at_once() -> None:
    raw = baseline()
    raw["services"]["user-service"]["image"] = {"tag": "latest"}
    raw["domain"] = "Not A Host"
    assert len(problems(raw)) == 2


def test_environment_default_replicas() -> None:
    raw = baseline()
    raw["environment"] = "staging"
    raw["services"]["user-service"] = {"image": {"tag": "1.0.0"}}
    assert parse_platform_config(raw, SOURCE).replicas("user-service") == 2


def test_invalid_config_registers_no_resource() -> None:
    raw = copy.deepcopy(baseline())
    raw["services"]["user-service"]["image"] = {"tag": "latest"}
    with pytest.raises(ProgramError) as caught:
        run_offline(
            program,
            project="vinylhound",
            stack="prod",
            config={"vinylhound:platform": json.dumps(raw)},
            secret_keys=[],
        )
    assert "services.user-service.image.tag" in str(caught.value)
    assert caught.value.registrations == []


def _project_with(tmp_path: Path, stack: str, platform: dict[str, Any]) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: vinylhound\nruntime: python\nstackConfigDir: stacks\n")
    (tmp_path / "stacks").mkdir()
    text = yaml.safe_dump({"config": {"vinylhound:platform": platform}})
    (tmp_path / "stacks" / f"Pulumi.{stack}.yaml").write_text(text)


def test_render_prints_one_line_per_problem_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = baseline()
    raw["services"]["user-service"]["replicaz"] = 3
    _project_with(tmp_path, "prod", raw)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["render", "prod"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "stacks/Pulumi.prod.yaml: vinylhound:platform.services.user-service.replicaz: unknown key"
    )
    assert not (tmp_path / "build").exists()


def test_render_of_an_unknown_stack_lists_the_stacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _project_with(tmp_path, "prod", baseline())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["render", "qa"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "unknown stack 'qa'; stacks: prod"


MISMATCH = (
    "stacks/Pulumi.prod.yaml: vinylhound:platform.environment: 'dev' does not match the stack name 'prod'"
)


def test_a_stack_named_after_an_environment_must_set_that_environment() -> None:
    raw = baseline() | {"environment": "dev"}
    with pytest.raises(ConfigError) as caught:
        parse_platform_config(raw, SOURCE, stack="prod")
    assert caught.value.lines() == [MISMATCH]


def test_a_personal_stack_may_set_any_environment() -> None:
    cfg = parse_platform_config(baseline(), "stacks/Pulumi.dev-alice.yaml", stack="dev-alice")
    assert cfg.environment == "prod"


def test_the_program_rejects_the_mismatch_before_registering_anything() -> None:
    raw = baseline() | {"environment": "dev"}
    with pytest.raises(ProgramError) as caught:
        run_offline(
            program,
            project="vinylhound",
            stack="prod",
            config={"vinylhound:platform": json.dumps(raw)},
            secret_keys=[],
        )
    assert str(caught.value).strip().splitlines()[-1] == MISMATCH
    assert caught.value.registrations == []


def test_render_rejects_the_mismatch_with_the_same_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project_with(tmp_path, "prod", baseline() | {"environment": "dev"})
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["render", "prod"])
    assert result.exit_code == 1
    assert result.stderr.strip() == MISMATCH


def _from_yaml(text: str) -> dict[str, Any]:
    """The stack file's value as the Pulumi CLI hands it over (YAML -> JSON object)."""
    loaded: dict[str, Any] = json.loads(json.dumps(yaml.safe_load(text)))
    return baseline() | loaded


def test_cors_origins_are_read_from_a_yaml_list() -> None:
    raw = _from_yaml("corsAllowedOrigins:\n  - https://vinylhound.app\n  - http://localhost:5173\n")
    cfg = parse_platform_config(raw, SOURCE)
    assert cfg.origins() == ("https://vinylhound.app", "http://localhost:5173")


@pytest.mark.parametrize(
    "origin", ["https://vinylhound.app/", "https://vinylhound.app/app", "ftp://x.io", "*"]
)
def test_a_cors_origin_with_a_path_or_another_scheme_is_rejected(origin: str) -> None:
    raw = _from_yaml(f"corsAllowedOrigins: ['{origin}']\n")
    assert problems(raw) == [
        f"{SOURCE}: vinylhound:platform.corsAllowedOrigins.0: "
        f"{origin!r} is not a valid http(s) origin (scheme://host[:port], no path)"
    ]


def test_an_empty_cors_origin_list_is_rejected() -> None:
    assert problems(_from_yaml("corsAllowedOrigins: []\n")) == [
        f"{SOURCE}: vinylhound:platform.corsAllowedOrigins: "
        "empty: list at least one origin, or leave it out for the default"
    ]


def _with_resources(requests: dict[str, str], limits: dict[str, str]) -> dict[str, Any]:
    raw = baseline()
    raw["services"]["user-service"]["resources"] = {"requests": requests, "limits": limits}
    return raw


def test_a_cpu_request_above_its_limit_is_rejected() -> None:
    raw = _with_resources({"cpu": "2", "memory": "128Mi"}, {"cpu": "500m", "memory": "256Mi"})
    assert problems(raw) == [
        f"{SOURCE}: vinylhound:platform.services.user-service.resources.requests.cpu: "
        "2 is above the limit 500m"
    ]


def test_a_memory_request_above_its_limit_is_rejected() -> None:
    raw = _with_resources({"cpu": "100m", "memory": "1Gi"}, {"cpu": "500m", "memory": "512Mi"})
    assert problems(raw) == [
        f"{SOURCE}: vinylhound:platform.services.user-service.resources.requests.memory: "
        "1Gi is above the limit 512Mi"
    ]


def test_requests_equal_to_limits_in_other_units_are_accepted() -> None:
    raw = _with_resources({"cpu": "1.5", "memory": "1Gi"}, {"cpu": "1500m", "memory": "1024Mi"})
    assert parse_platform_config(raw, SOURCE).services["user-service"].resources.requests.cpu == "1.5"
