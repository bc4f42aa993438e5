"""The event bus definitions: derived from the catalog, one stream per family, least privilege,
the chart's config rendering, and alerts that Prometheus accepts and fires."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra import catalog, events
from infra.config import EventsConfig


def _bus(enabled: list[str] | None = None, **settings: object) -> events.EventBus:
    return events.event_bus(
        EventsConfig.model_validate(settings), 3, enabled if enabled is not None else list(catalog.names())
    )


def test_subjects_are_namespaced_under_vinylhound() -> None:
    assert events.subject("user.created") == "vinylhound.user.created"


def test_the_catalog_yields_one_user_stream_and_the_playlist_consumer() -> None:
    bus = _bus()
    assert [(s.name, s.subjects) for s in bus.streams] == [("VINYLHOUND_USER", ("vinylhound.user.created",))]
    assert [(c.durable, c.stream, c.subjects) for c in bus.consumers] == [
        ("playlist-service", "VINYLHOUND_USER", ("vinylhound.user.created",))
    ]


def test_events_of_one_family_share_a_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    user = catalog.workload("user-service")
    more = dataclasses.replace(user, publishes=("user.created", "user.deleted"))
    auditor = dataclasses.replace(
        catalog.workload("rating-service"), name="auditor", consumes=("user.deleted", "playlist.created")
    )
    patched = (*(more if w.name == user.name else w for w in catalog.WORKLOADS), auditor)
    monkeypatch.setattr(catalog, "WORKLOADS", patched)
    bus = _bus([w.name for w in catalog.WORKLOADS])
    assert {s.name: s.subjects for s in bus.streams} == {
        "VINYLHOUND_PLAYLIST": ("vinylhound.playlist.created",),
        "VINYLHOUND_USER": ("vinylhound.user.created", "vinylhound.user.deleted"),
    }
    assert sorted((c.durable, c.stream) for c in bus.consumers) == [
        ("auditor", "VINYLHOUND_PLAYLIST"),
        ("auditor", "VINYLHOUND_USER"),
        ("playlist-service", "VINYLHOUND_USER"),
    ]


def test_a_consumer_of_several_subjects_of_a_family_filters_on_all_of_them() -> None:
    consumer = events.ConsumerDef("x", "S", ("a.b", "a.c"), ack_wait="30s", max_deliver=5)
    assert (
        consumer.cr_spec()["filterSubjects"] == ["a.b", "a.c"] and "filterSubject" not in consumer.cr_spec()
    )


def test_a_stack_without_the_consumer_still_has_the_stream_its_publisher_needs() -> None:
    bus = _bus(["monolith", "user-service"])
    assert [s.name for s in bus.streams] == ["VINYLHOUND_USER"] and bus.consumers == ()
    assert bus.connected_workloads() == {"user-service"}


def test_workloads_that_neither_publish_nor_consume_get_no_nats_user() -> None:
    assert _bus().connected_workloads() == {"user-service", "playlist-service"}


def test_a_publisher_may_publish_only_its_events_and_a_consumer_only_pull_and_ack_its_own() -> None:
    bus = _bus()
    assert bus.user("user-service").publish == ("vinylhound.user.created",)
    assert bus.user("playlist-service").publish == (
        "$JS.API.CONSUMER.MSG.NEXT.VINYLHOUND_USER.playlist-service",
        "$JS.ACK.VINYLHOUND_USER.playlist-service.>",
        "$JS.API.CONSUMER.INFO.VINYLHOUND_USER.playlist-service",
    )


def test_the_stream_and_its_resource_say_the_same_in_the_units_each_side_reads() -> None:
    (stream,) = _bus(maxAge="24h", duplicateWindow="2m").streams
    api, cr = stream.api_config(), stream.cr_spec()
    assert (api["max_age"], cr["maxAge"]) == (24 * 3600 * 10**9, "24h")
    assert (api["duplicate_window"], cr["duplicateWindow"]) == (120 * 10**9, "2m")
    assert api["num_replicas"] == cr["replicas"] == 3 and api["storage"] == cr["storage"] == "file"


def test_render_conf_unquotes_placeholders_like_the_nats_chart() -> None:
    text = events.render_conf({"authorization": events.authorization(_bus())})
    assert '"password": $NATS_PASSWORD_USER_SERVICE' in text and "<<" not in text
    # Everything else stays valid JSON once the variables are given values.
    json.loads(re.sub(r"\$(NATS_PASSWORD_[A-Z_]+)", r'"\1"', text))


def test_server_environment_names_one_variable_per_user() -> None:
    bus = _bus()
    env = events.server_environment(bus, {u.name: f"pw-{u.name}" for u in bus.users})
    assert env == {
        "NATS_PASSWORD_USER_SERVICE": "pw-user-service",
        "NATS_PASSWORD_PLAYLIST_SERVICE": "pw-playlist-service",
        "NATS_PASSWORD_JETSTREAM_CONTROLLER": "pw-jetstream-controller",
    }


# --- alerts, checked and exercised by Prometheus' own promtool ---------------------------------


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: run scripts/install-tools.sh (Debian package prometheus)")
    return found


RUNBOOKS = "https://runbooks.example/events.md"


def _rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    groups = [
        {
            "name": "vinylhound-event-bus",
            "rules": events.alert_rules(
                _bus(), EventsConfig.model_validate({"lagAlertThreshold": 100}), RUNBOOKS
            ),
        }
    ]
    path.write_text(yaml.safe_dump({"groups": groups}))
    return path


def test_promtool_accepts_the_alert_rules(tmp_path: Path) -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(_rules_file(tmp_path))], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_lag_alert_fires_for_a_consumer_that_stays_behind_and_not_for_one_that_catches_up(
    tmp_path: Path,
) -> None:
    rules = _rules_file(tmp_path)
    series = 'nats_consumer_num_pending{{stream_name="VINYLHOUND_USER",consumer_name="{}"}}'
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": series.format("playlist-service"), "values": "500x20"},
                    {"series": series.format("fast-service"), "values": "500 0x20"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "15m",
                        "alertname": "VinylhoundEventConsumerLag",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "stream_name": "VINYLHOUND_USER",
                                    "consumer_name": "playlist-service",
                                },
                                "exp_annotations": {
                                    "summary": "Event consumer playlist-service is falling behind",
                                    "description": (
                                        "playlist-service has 500 undelivered events on VINYLHOUND_USER; "
                                        "events older than 168h are lost."
                                    ),
                                    "runbook_url": f"{RUNBOOKS}#vinylhoundeventconsumerlag",
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(test))
    result = subprocess.run([_promtool(), "test", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stream_storage_alert_fires_above_the_configured_share_of_max_bytes(tmp_path: Path) -> None:
    rules = _rules_file(tmp_path)
    gib = 1024**3
    test = {
        "rule_files": [str(rules)],
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'nats_stream_total_bytes{stream_name="VINYLHOUND_USER"}',
                        "values": f"{int(0.7 * gib)}x10 {int(0.9 * gib)}x10",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "9m", "alertname": "VinylhoundEventStreamStorage", "exp_alerts": []},
                    {
                        "eval_time": "20m",
                        "alertname": "VinylhoundEventStreamStorage",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "stream_name": "VINYLHOUND_USER"},
                                "exp_annotations": {
                                    "summary": "Stream VINYLHOUND_USER is almost full",
                                    "description": "Above 80% of its 1Gi limit; "
                                    "the oldest events are discarded beyond it.",
                                    "runbook_url": f"{RUNBOOKS}#vinylhoundeventstreamstorage",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(test))
    result = subprocess.run([_promtool(), "test", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
