"""Layout promises the Pulumi CLI relies on."""

from __future__ import annotations

import sys

import yaml

from tests.conftest import ROOT


def test_no_module_in_infra_shadows_an_importable_top_level_name() -> None:
    # Pulumi runs `main: infra/` with infra/ first on sys.path: infra/secrets.py would replace the
    # standard library's `secrets` for every library the program imports.
    names = {p.stem for p in (ROOT / "infra").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert names & set(sys.stdlib_module_names) == set()
    assert (
        names & {"pulumi", "pulumi_kubernetes", "pulumi_random", "pulumi_docker", "pydantic", "yaml"} == set()
    )


def test_pulumi_project_points_at_the_program_and_stack_directory() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "vinylhound"
    assert project["main"] == "infra/"
    assert project["stackConfigDir"] == "stacks"
    assert (ROOT / project["main"] / "__main__.py").is_file()
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
