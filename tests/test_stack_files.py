"""Bad stack files and settings are refused the same way, whatever is wrong: one line per problem
(``file[:line:column]: setting.path: message``), exit 1, no traceback, nothing written.

Each test starts from a valid prod stack file and breaks one thing a person really types: a list
or a scalar at the top, the platform setting as a string, bytes that are not UTF-8, a YAML slip, a
key given twice deep down, a number past Kubernetes' int32, a database request above its limit, a
secret setting in clear text, an unquoted tag, a value of several megabytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import infra.program
from infra.config import ConfigError, parse_platform_config, validate_stack
from infra.program import main as program
from ops.cli import app
from ops.mockrun import ProgramError, run_offline
from ops.project import Project, ProjectError
from tests.test_config import SOURCE, baseline

FILE = "stacks/Pulumi.prod.yaml"


def _project(root: Path, text: str | bytes) -> Project:
    (root / "Pulumi.yaml").write_text("name: vinylhound\nruntime: python\nstackConfigDir: stacks\n")
    (root / "stacks").mkdir(exist_ok=True)
    path = root / FILE
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return Project(root)


def _valid_file() -> str:
    return yaml.safe_dump({"config": {"vinylhound:platform": baseline()}}, sort_keys=False)


def _file_problem(root: Path, text: str | bytes) -> str:
    with pytest.raises(ProjectError) as caught:
        _project(root, text).stack_config("prod")
    return str(caught.value)


def _problems(raw: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_platform_config(raw, SOURCE)
    return caught.value.lines()


# --- the file ------------------------------------------------------------------------------------


def test_a_list_at_the_top_of_the_file_is_refused(tmp_path: Path) -> None:
    assert _file_problem(tmp_path, "- config\n") == (
        f"{FILE}: (document): must be a mapping with a 'config' key, not a list"
    )


def test_a_scalar_at_the_top_of_the_file_is_refused(tmp_path: Path) -> None:
    assert _file_problem(tmp_path, "prod\n") == (
        f"{FILE}: (document): must be a mapping with a 'config' key, not the str 'prod'"
    )


def test_bytes_that_are_not_utf8_are_refused_with_their_line_and_column(tmp_path: Path) -> None:
    text = _valid_file().replace("domain: vinylhound.app", "domain: vinylhound\xe9.app").encode("latin-1")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if b"domain" in t)
    assert _file_problem(tmp_path, text) == f"{FILE}:{line}:23: not UTF-8 (byte 0xe9); save the file as UTF-8"


def test_a_yaml_error_is_one_line_with_file_line_and_column(tmp_path: Path) -> None:
    text = _valid_file().replace("imageRegistry: ghcr.io/vinylhound", "imageRegistry: [ghcr.io/vinylhound")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "imageRegistry" in t)
    problem = _file_problem(tmp_path, text)
    assert "\n" not in problem
    assert problem.startswith(f"{FILE}:{line + 1}:") and ": not valid YAML: " in problem


def test_a_key_given_twice_deep_in_the_file_is_refused_naming_both_lines(tmp_path: Path) -> None:
    text = _valid_file()
    first = "    services:\n      monolith:\n"
    assert first in text
    text = text.replace(
        first, "    services:\n      user-service:\n        enabled: false\n      monolith:\n"
    )
    first_line, second_line = [i for i, t in enumerate(text.splitlines(), 1) if t == "      user-service:"]
    assert _file_problem(tmp_path, text) == (
        f"{FILE}:{second_line}:7: vinylhound:platform.services.user-service: given twice (first on line "
        f"{first_line}); YAML would silently keep the last one, remove one"
    )


def test_a_stack_setting_given_twice_is_refused(tmp_path: Path) -> None:
    text = _valid_file() + "  vinylhound:platform: {}\n"
    problem = _file_problem(tmp_path, text)
    assert problem.startswith(f"{FILE}:") and problem.endswith(
        ": vinylhound:platform: given twice (first on line 2); "
        "YAML would silently keep the last one, remove one"
    )


# --- the settings ----------------------------------------------------------------------------------


def test_the_platform_setting_as_a_string_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_stack("prod", {"vinylhound:platform": "ghcr.io/vinylhound"}.get, lambda key: False)
    assert caught.value.lines() == [
        f"{FILE}: vinylhound:platform: must be a mapping of settings (environment, domain, services, ...), "
        "not the str 'ghcr.io/vinylhound'"
    ]


def test_replicas_above_int32_are_refused() -> None:
    raw = baseline()
    raw["services"]["user-service"]["autoscaling"] = {"minReplicas": 3, "maxReplicas": 2**31}
    assert _problems(raw) == [
        f"{SOURCE}: vinylhound:platform.services.user-service.autoscaling.maxReplicas: "
        "2147483648 is out of range: Kubernetes takes 32-bit integers (at most 2147483647)"
    ]


def test_a_database_request_above_its_limit_is_refused() -> None:
    raw = baseline()
    raw["databases"]["resources"] = {
        "requests": {"cpu": "2", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    assert _problems(raw) == [
        f"{SOURCE}: vinylhound:platform.databases.resources.requests.cpu: 2 is above the limit 1"
    ]


def test_an_unquoted_version_tag_gets_a_hint_to_quote_it() -> None:
    raw = json.loads(json.dumps(yaml.safe_load("tag: 2.10")))
    config = baseline()
    config["services"]["user-service"]["image"] = raw
    assert _problems(config) == [
        f"{SOURCE}: vinylhound:platform.services.user-service.image.tag: Input should be a valid string; "
        'YAML read 2.1 as a number: quote it as meant, e.g. tag: "2.1" (unquoted 2.10 is 2.1)'
    ]


def test_an_unquoted_whole_number_where_text_is_expected_gets_a_hint() -> None:
    raw = baseline()
    raw["services"]["user-service"]["resources"] = {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": 1, "memory": "256Mi"},
    }
    assert _problems(raw) == [
        f"{SOURCE}: vinylhound:platform.services.user-service.resources.limits.cpu: "
        'Input should be a valid string; YAML read 1 as a number: quote it, e.g. cpu: "1"'
    ]


def test_a_five_megabyte_value_is_named_not_echoed() -> None:
    raw = baseline() | {"domain": "x" * 5_000_000}
    (line,) = _problems(raw)
    assert len(line) < 300
    assert line.startswith(f"{SOURCE}: vinylhound:platform.domain: 'xxx")
    assert line.endswith("…(5000002 characters) is not a valid lowercase DNS hostname")


SECRET_KEY = "vinylhound:spotifyClientSecret"


def _settings(secret: str) -> dict[str, str]:
    return {"vinylhound:platform": json.dumps(baseline()), SECRET_KEY: secret}


def test_a_secret_setting_in_clear_text_is_refused_naming_the_command_and_not_the_value() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_stack("prod", _settings("hunter2").get, lambda key: False)
    assert caught.value.lines() == [
        f"{FILE}: {SECRET_KEY}: is in clear text; delete it from the file and set it encrypted with "
        f"`pulumi config set --secret {SECRET_KEY} -s prod` (it reads the value from stdin)"
    ]
    assert "hunter2" not in str(caught.value)


def test_an_encrypted_secret_setting_is_accepted() -> None:
    cfg = validate_stack("prod", _settings("[secret]").get, {SECRET_KEY}.__contains__)
    assert cfg.environment == "prod"


def test_the_program_refuses_a_clear_text_secret_before_registering_anything() -> None:
    with pytest.raises(ProgramError) as caught:
        run_offline(program, project="vinylhound", stack="prod", config=_settings("hunter2"), secret_keys=[])
    assert f"{FILE}: {SECRET_KEY}: is in clear text" in str(caught.value)
    assert caught.value.registrations == []


# --- the command -----------------------------------------------------------------------------------


def test_a_failing_render_exits_1_with_the_line_and_leaves_the_previous_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path, "- config\n")
    previous = tmp_path / "build" / "prod" / "resources.json"
    previous.parent.mkdir(parents=True)
    previous.write_text("[]\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["render", "prod"])
    assert result.exit_code == 1
    assert result.stderr == f"{FILE}: (document): must be a mapping with a 'config' key, not a list\n"
    assert sorted(p.name for p in (tmp_path / "build").rglob("*")) == ["prod", "resources.json"]
    assert previous.read_text() == "[]\n"


def test_an_unquoted_yes_where_text_is_expected_gets_a_hint() -> None:
    raw = baseline()
    raw["services"]["user-service"]["image"] = json.loads(json.dumps(yaml.safe_load("tag: yes")))
    assert _problems(raw) == [
        f"{SOURCE}: vinylhound:platform.services.user-service.image.tag: Input should be a valid string; "
        "YAML reads unquoted yes/no/on/off/true/false as a boolean: quote it"
    ]


def test_a_program_that_raises_is_one_line_from_render_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_target(cfg: object, secrets: object) -> dict[str, object]:
        raise RuntimeError("no route for\n  monolith")

    _project(tmp_path, _valid_file())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(infra.program.TARGETS, "kubernetes", broken_target)
    result = CliRunner().invoke(app, ["render", "prod"])
    assert result.exit_code == 1
    assert result.stderr == "prod: the program raised RuntimeError: no route for monolith\n"
    assert not (tmp_path / "build").exists()


def test_a_misspelt_setting_of_this_program_is_refused_and_others_namespaces_are_left_alone() -> None:
    settings = {"vinylhound:platform": json.dumps(baseline()), "vinylhound:spotifyClientSecert": "[secret]"}
    settings["kubernetes:context"] = "prod-cluster"
    with pytest.raises(ConfigError) as caught:
        validate_stack("prod", settings.get, {"vinylhound:spotifyClientSecert"}.__contains__, settings.keys())
    assert caught.value.lines() == [
        f"{FILE}: vinylhound:spotifyClientSecert: unknown setting; this program reads "
        "vinylhound:platform, vinylhound:spotifyClientSecret"
    ]


def test_the_program_refuses_a_misspelt_setting_before_registering_anything() -> None:
    config = {"vinylhound:platform": json.dumps(baseline()), "vinylhound:platfrom": "{}"}
    with pytest.raises(ProgramError) as caught:
        run_offline(program, project="vinylhound", stack="prod", config=config, secret_keys=[])
    assert f"{FILE}: vinylhound:platfrom: unknown setting" in str(caught.value)
    assert caught.value.registrations == []
