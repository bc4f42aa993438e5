"""Alert rules: promtool accepts what the program renders, and each alert fires exactly above its
threshold when fed synthetic series (``promtool test rules``)."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.catalog import WORKLOADS
from infra.config import AlertThresholds
from infra.targets.kubernetes.observability import alerts, dashboards
from tests.conftest import KUBE_STACKS, manifests_of, rendered

PROMTOOL = shutil.which("promtool")

NS = "vinylhound"
SERVICE = "catalog-service"
CLUSTER = "catalog-service-db"
RUNBOOKS = "https://example.test/runbooks.md"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL, "promtool is missing: run scripts/install-tools.sh (Debian package prometheus)"
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, check=False)


def check_rules(groups: list[dict[str, Any]], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    return promtool("check", "rules", "rules.yaml", cwd=tmp_path)


# --- promtool check rules ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_rendered_rule_group_passes_promtool_check_rules(stack: str, tmp_path: Path) -> None:
    groups = [
        group
        for m in manifests_of(rendered(stack))
        if m["kind"] == "PrometheusRule"
        for group in m["spec"]["groups"]
    ]
    result = check_rules(groups, tmp_path)
    assert groups and result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_expression(tmp_path: Path) -> None:
    # The check above is only worth something if promtool really parses the expressions.
    group = alerts.service_group(SERVICE, NS, AlertThresholds(), RUNBOOKS)
    group["rules"][0]["expr"] = "sum(rate(istio_requests_total[5m]"
    assert check_rules([group], tmp_path).returncode != 0


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    boards = [dashboards.service_dashboard(w, NS) for w in WORKLOADS]
    boards.append(dashboards.migration_dashboard([w for w in WORKLOADS if w.role == "service"]))
    exprs = [e for board in boards for e in dashboards.expressions(board)]
    rules = [{"record": f"dashboard:query:{i}", "expr": e} for i, e in enumerate(exprs)]
    result = check_rules([{"name": "dashboards", "rules": rules}], tmp_path)
    assert exprs and result.returncode == 0, result.stdout + result.stderr


# --- promtool test rules -------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """Synthetic series for one alert: ``above`` must fire, ``below`` must not."""

    alert: str
    group: Callable[[AlertThresholds], dict[str, Any]]
    above: Callable[[AlertThresholds], list[dict[str, str]]]
    below: Callable[[AlertThresholds], list[dict[str, str]]]
    #: Labels the expression itself returns (besides the rule's labels).
    result_labels: dict[str, str]
    eval_minutes: int = 30
    #: Sample and rule-evaluation step; long windows use a coarser one to stay fast.
    step_minutes: int = 1


def _service(t: AlertThresholds) -> dict[str, Any]:
    return alerts.service_group(SERVICE, NS, t, RUNBOOKS)


def _database(t: AlertThresholds) -> dict[str, Any]:
    return alerts.database_group(CLUSTER, SERVICE, NS, t, RUNBOOKS)


_MESH = f'reporter="destination",destination_workload_namespace="{NS}",destination_workload="{SERVICE}"'
_DB_POD = f'namespace="{NS}",pod="{CLUSTER}-1"'
_RESTART_POD = f"{SERVICE}-5d8f7c9b4-x2x7q"


def _series(name: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": values}


def _requests(error_ratio: float) -> list[dict[str, str]]:
    # 100 requests a minute succeed; errors are added so that errors / total == error_ratio.
    errors = 100 * error_ratio / (1 - error_ratio)
    return [
        _series("istio_requests_total", f'{_MESH},response_code="200"', "0+100x40"),
        _series("istio_requests_total", f'{_MESH},response_code="503"', f"0+{errors:.4f}x40"),
    ]


def _latency(slow: bool, t: AlertThresholds) -> list[dict[str, str]]:
    # Every request falls into one bucket: below half the threshold, or between 2x and 4x it.
    limit = t.latency_p99_ms
    bounds = [limit / 2, 2 * limit, 4 * limit]
    first_full = 2 if slow else 0
    return [
        _series(
            "istio_request_duration_milliseconds_bucket",
            f'{_MESH},le="{b:g}"',
            "0+10x40" if i >= first_full else "0+0x40",
        )
        for i, b in enumerate(bounds)
    ] + [_series("istio_request_duration_milliseconds_bucket", f'{_MESH},le="+Inf"', "0+10x40")]


def _restarts(restarts_in_hour: int) -> list[dict[str, str]]:
    labels = f'namespace="{NS}",pod="{_RESTART_POD}",container="{SERVICE}"'
    if restarts_in_hour == 0:
        return [_series("kube_pod_container_status_restarts_total", labels, "0x90")]
    # A steady climb over the last hour.
    step = restarts_in_hour / 60
    return [_series("kube_pod_container_status_restarts_total", labels, f"0+{step:.4f}x90")]


def _connections(ratio: float) -> list[dict[str, str]]:
    return [
        _series(
            "cnpg_backends_total",
            f'{_DB_POD},datname="app",state="active",usename="app"',
            f"{ratio * 100:g}x40",
        ),
        _series("cnpg_pg_settings_setting", f'{_DB_POD},name="max_connections"', "100x40"),
    ]


SCENARIOS = [
    Scenario(
        "ServiceHighErrorRatio",
        _service,
        above=lambda t: _requests(min(0.99, 2 * t.error_ratio)),
        below=lambda t: _requests(t.error_ratio / 2),
        result_labels={},
    ),
    Scenario(
        "ServiceHighLatencyP99",
        _service,
        above=lambda t: _latency(True, t),
        below=lambda t: _latency(False, t),
        result_labels={},
    ),
    Scenario(
        "ServiceNoHealthyReplicas",
        _service,
        above=lambda t: [
            _series(
                "kube_deployment_status_replicas_available",
                f'namespace="{NS}",deployment="{SERVICE}"',
                "0x40",
            )
        ],
        below=lambda t: [
            _series(
                "kube_deployment_status_replicas_available",
                f'namespace="{NS}",deployment="{SERVICE}"',
                "1x40",
            )
        ],
        result_labels={"deployment": SERVICE},
    ),
    Scenario(
        "ServiceRestarting",
        _service,
        above=lambda t: _restarts(2 * t.restarts_per_hour),
        below=lambda t: _restarts(math.floor(t.restarts_per_hour / 2)),
        result_labels={"pod": _RESTART_POD},
        eval_minutes=80,
    ),
    Scenario(
        "DatabaseReplicationLagHigh",
        _database,
        above=lambda t: [_series("cnpg_pg_replication_lag", _DB_POD, f"{2 * t.replication_lag_seconds}x40")],
        below=lambda t: [
            _series("cnpg_pg_replication_lag", _DB_POD, f"{t.replication_lag_seconds / 2:g}x40")
        ],
        result_labels={},
    ),
    Scenario(
        "DatabaseBackupTooOld",
        _database,
        # The last backup happened at time 0 and none since / a backup every 10 minutes.
        above=lambda t: [
            _series(
                "cnpg_collector_last_available_backup_timestamp",
                _DB_POD,
                f"0x{(t.backup_max_age_hours + 1) * 6}",
            )
        ],
        below=lambda t: [
            _series(
                "cnpg_collector_last_available_backup_timestamp",
                _DB_POD,
                f"0+600x{(t.backup_max_age_hours + 1) * 6}",
            )
        ],
        result_labels={},
        eval_minutes=(AlertThresholds().backup_max_age_hours + 1) * 60,
        step_minutes=10,
    ),
    Scenario(
        "DatabaseConnectionsNearLimit",
        _database,
        above=lambda t: _connections((1 + t.connections_ratio) / 2),
        below=lambda t: _connections(t.connections_ratio / 2),
        result_labels={},
    ),
]


def _expected(rule: dict[str, Any], result_labels: dict[str, str]) -> dict[str, Any]:
    return {"exp_labels": {**result_labels, **rule["labels"]}, "exp_annotations": rule["annotations"]}


def run_rule_test(scenario: Scenario, t: AlertThresholds, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """One promtool unit-test file: the alert fires on ``above`` and stays silent on ``below``."""
    group = scenario.group(t)
    (rule,) = [r for r in group["rules"] if r["alert"] == scenario.alert]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [group]}))

    def case(series: list[dict[str, str]], fires: bool) -> dict[str, Any]:
        return {
            "interval": f"{scenario.step_minutes}m",
            "input_series": series,
            "alert_rule_test": [
                {
                    "eval_time": f"{scenario.eval_minutes}m",
                    "alertname": scenario.alert,
                    "exp_alerts": [_expected(rule, scenario.result_labels)] if fires else [],
                }
            ],
        }

    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": f"{scenario.step_minutes}m",
        "tests": [case(scenario.above(t), True), case(scenario.below(t), False)],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    return promtool("test", "rules", "tests.yaml", cwd=tmp_path)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.alert)
def test_alert_fires_above_its_default_threshold_and_not_below(scenario: Scenario, tmp_path: Path) -> None:
    result = run_rule_test(scenario, AlertThresholds(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_scenario() -> None:
    names = {
        r["alert"] for g in (_service(AlertThresholds()), _database(AlertThresholds())) for r in g["rules"]
    }
    assert names == {s.alert for s in SCENARIOS}


def test_thresholds_come_from_config(tmp_path: Path) -> None:
    # 10 % errors fire at the default 5 % but not once the stack raises the threshold to 20 %.
    (scenario,) = [s for s in SCENARIOS if s.alert == "ServiceHighErrorRatio"]
    raised = AlertThresholds(error_ratio=0.2)
    ten_percent = Scenario(
        scenario.alert,
        scenario.group,
        above=lambda t: _requests(0.4),
        below=lambda t: _requests(0.1),
        result_labels={},
    )
    assert run_rule_test(ten_percent, raised, tmp_path).returncode == 0
    fires_at_default = Scenario(
        scenario.alert,
        scenario.group,
        above=lambda t: _requests(0.1),
        below=lambda t: _requests(0.01),
        result_labels={},
    )
    assert run_rule_test(fires_at_default, AlertThresholds(), tmp_path).returncode == 0


def test_a_wrong_expectation_makes_promtool_fail(tmp_path: Path) -> None:
    # Guards the harness: swapping the scenarios must fail, or the tests above prove nothing.
    (scenario,) = [s for s in SCENARIOS if s.alert == "ServiceHighErrorRatio"]
    swapped = Scenario(scenario.alert, scenario.group, scenario.below, scenario.above, {})
    assert run_rule_test(swapped, AlertThresholds(), tmp_path).returncode != 0


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_alert_has_severity_summary_description_and_runbook(stack: str) -> None:
    rules = [
        rule
        for m in manifests_of(rendered(stack))
        if m["kind"] == "PrometheusRule"
        for g in m["spec"]["groups"]
        for rule in g["rules"]
    ]
    assert rules
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
        assert rule["annotations"]["runbook_url"].startswith("https://")


def test_every_alert_links_to_an_existing_runbook_section() -> None:
    runbooks = (Path(__file__).resolve().parents[1] / "docs" / "runbooks.md").read_text()
    anchors = {line[3:].strip().lower() for line in runbooks.splitlines() if line.startswith("## ")}
    links = {
        r["annotations"]["runbook_url"].split("#", 1)[1]
        for m in manifests_of(rendered("prod"))
        if m["kind"] == "PrometheusRule"
        for g in m["spec"]["groups"]
        for r in g["rules"]
    }
    assert links and links <= anchors
