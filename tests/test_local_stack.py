"""The `local` stack under mocks: the docker target's containers, wiring, registry and scraping."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.docker.specs import SECRET_ENV_LABEL
from infra import catalog, events, migration, schema
from infra.config import FULL_KEY, parse_platform_config, stack_file
from infra.program import main as program
from infra.targets.docker import plan
from ops.mockrun import MASK, Registration, Run, run_offline
from tests import natsd, pg
from tests.conftest import PROJECT, rendered

CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
NATS_CLIENT = {"NATS_URL", "NATS_USER", "NATS_PASSWORD"}
INIT_SQL = "/docker-entrypoint-initdb.d/10-init.sql"


def _config() -> Any:
    raw = json.loads(PROJECT.stack_config("local").values[FULL_KEY])
    return parse_platform_config(raw, stack_file("local"))


CFG = _config()
ENABLED = [w for w, _ in CFG.enabled()]


def containers(run: Run) -> dict[str, Registration]:
    """Containers by hostname."""
    return {r.inputs["hostname"]: r for r in run.registrations if r.type == CONTAINER}


def labels(reg: Registration) -> dict[str, str]:
    return {entry["label"]: entry["value"] for entry in reg.inputs.get("labels") or []}


def env_names(reg: Registration) -> set[str]:
    """Every variable the container gets: plain ones by name, secret ones from the secret label."""
    plain = {e.split("=", 1)[0] for e in reg.inputs.get("envs") or [] if e != MASK}
    secret = set(filter(None, labels(reg).get(SECRET_ENV_LABEL, "").split(",")))
    return plain | secret


def plain_env(reg: Registration) -> dict[str, str]:
    return dict(e.split("=", 1) for e in reg.inputs.get("envs") or [] if e != MASK)


def aliases(reg: Registration) -> set[str]:
    return {a for n in reg.inputs["networksAdvanced"] for a in n["aliases"]}


def uploaded(reg: Registration, path: str) -> str:
    (content,) = [u["content"] for u in reg.inputs["uploads"] if u["file"] == path]
    return str(content)


def reachable(url: str, run: Run) -> tuple[str, int, str]:
    """Resolve ``http://host:port/path`` against the network: the container answering to ``host``
    must listen on ``port`` (a workload) or be a platform service. Returns (hostname, port, path)."""
    match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)(/.*)?", url)
    assert match, url
    host, port, path = match.group(1), int(match.group(2)), match.group(3) or "/"
    owners = [name for name, reg in containers(run).items() if host in aliases(reg)]
    assert len(owners) == 1, f"{host} resolves to {owners}"
    return owners[0], port, path


# --- containers --------------------------------------------------------------------------------


def test_every_enabled_workload_is_a_container_named_after_it() -> None:
    assert {w.name for w in ENABLED} <= set(containers(rendered("local")))
    assert len(ENABLED) == len(catalog.WORKLOADS)


def test_every_container_is_on_the_one_user_defined_network() -> None:
    (network,) = [r for r in rendered("local").registrations if r.type == "docker:index/network:Network"]
    assert network.inputs["driver"] == "bridge"
    for reg in containers(rendered("local")).values():
        assert [n["name"] for n in reg.inputs["networksAdvanced"]] == [network.inputs["name"]]
        assert network.urn in reg.dependencies


def test_every_published_port_listens_on_loopback_only() -> None:
    ports = [p for reg in containers(rendered("local")).values() for p in reg.inputs.get("ports") or []]
    assert ports and {p["ip"] for p in ports} == {"127.0.0.1"}


def test_every_catalog_workload_has_its_own_host_port_slot() -> None:
    slots = [plan.slot(w) for w in catalog.WORKLOADS]
    assert len(slots) == len(set(slots)) and all(0 <= s < plan.DATABASE_OFFSET for s in slots)


def test_a_workload_inserted_first_moves_no_other_workloads_port(monkeypatch: pytest.MonkeyPatch) -> None:
    ports = plan.PortPlan(18000)
    before = {w.name: (ports.workload(w), ports.database(w)) for w in catalog.WORKLOADS}
    new = dataclasses.replace(catalog.workload("playlist-service"), name="wishlist-service")
    monkeypatch.setattr(catalog, "WORKLOADS", (new, *catalog.WORKLOADS))
    monkeypatch.setattr(catalog, "_BY_NAME", {w.name: w for w in catalog.WORKLOADS})
    assert {w.name: (ports.workload(w), ports.database(w)) for w in catalog.WORKLOADS[1:]} == before


def test_no_two_containers_publish_the_same_host_port() -> None:
    ports = [
        p["external"] for r in containers(rendered("local")).values() for p in r.inputs.get("ports") or []
    ]
    assert len(ports) == len(set(ports))


def one_shot(reg: Registration) -> bool:
    """A task the stack waits to finish (attached, allowed to stay stopped), not a service."""
    return reg.inputs.get("attach") is True and reg.inputs.get("mustRun") is False


def test_every_container_restarts_and_has_a_healthcheck_it_waits_for() -> None:
    for name, reg in containers(rendered("local")).items():
        if one_shot(reg):
            continue
        assert reg.inputs["restart"] == "unless-stopped", name
        assert reg.inputs["healthcheck"]["tests"][0] == "CMD", name
        assert reg.inputs["wait"] is True, name


def test_every_container_runs_a_pinned_image() -> None:
    for name, reg in containers(rendered("local")).items():
        image = reg.inputs["image"]
        assert "@sha256:" in image or re.search(r":[A-Za-z0-9_][A-Za-z0-9_.-]*$", image), (name, image)
        assert not image.endswith(":latest"), name


def test_workloads_run_as_non_root_on_a_read_only_root_filesystem() -> None:
    run = rendered("local")
    for w in ENABLED:
        reg = containers(run)[w.name]
        assert reg.inputs["user"] == str(w.run_as_user)
        assert reg.inputs["readOnly"] is True
        assert set(reg.inputs["tmpfs"]) == set(w.writable_paths)
        assert reg.inputs["capabilities"]["drops"] == ["ALL"]


def test_data_lives_in_named_volumes() -> None:
    run = rendered("local")
    volumes = {r.inputs["name"] for r in run.registrations if r.type == "docker:index/volume:Volume"}
    for w in ENABLED:
        if w.database is not None:
            db = containers(run)[f"{w.name}-db"]
            (mount,) = db.inputs["volumes"]
            assert mount["containerPath"] == "/var/lib/postgresql/data" and mount["volumeName"] in volumes


# --- databases and the environment contract -----------------------------------------------------


def test_each_workload_starts_after_its_own_healthy_database() -> None:
    run = rendered("local")
    for w in ENABLED:
        if w.database is None:
            continue
        db = containers(run)[f"{w.name}-db"]
        assert db.urn in containers(run)[w.name].dependencies
        assert db.inputs["wait"] is True and "pg_isready" in db.inputs["healthcheck"]["tests"]


def test_each_workload_reads_only_its_own_database() -> None:
    run = rendered("local")
    for w in ENABLED:
        if "DB_HOST" not in w.env:
            continue
        env = plain_env(containers(run)[w.name])
        db = containers(run)[env["DB_HOST"]]
        assert env["DB_HOST"] == f"{w.name}-db" and plain_env(db)["POSTGRES_DB"] == env["DB_NAME"]
        assert env["DB_SSLMODE"] == "disable"


def test_every_workload_gets_its_contract_plus_tracing_and_registry() -> None:
    platform = {
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "SERVICE_REGISTRY",
    }
    optional = {"SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET"}  # not configured in local
    for w in ENABLED:
        bus = NATS_CLIENT if w.publishes or w.consumes else set()
        assert env_names(containers(rendered("local"))[w.name]) == (set(w.env) - optional) | platform | bus, (
            w.name
        )


def test_tracing_and_registry_point_at_platform_containers() -> None:
    run = rendered("local")
    for w in ENABLED:
        env = plain_env(containers(run)[w.name])
        assert reachable(env["OTEL_EXPORTER_OTLP_ENDPOINT"], run)[:2] == ("jaeger", 4318)
        assert reachable(env["SERVICE_REGISTRY"], run)[:2] == ("consul", 8500)


def test_secret_variables_are_masked_and_counted() -> None:
    for name, reg in containers(rendered("local")).items():
        secret_names = set(filter(None, labels(reg).get(SECRET_ENV_LABEL, "").split(",")))
        assert (reg.inputs.get("envs") or []).count(MASK) == len(secret_names), name
        assert not secret_names & {e.split("=", 1)[0] for e in reg.inputs.get("envs") or []}, name


def test_a_configured_secret_never_reaches_the_record_in_plain_text() -> None:
    config = dict(PROJECT.stack_config("local").values)
    config["vinylhound:spotifyClientSecret"] = "plaintext-spotify-value"
    run = run_offline(
        program,
        project=PROJECT.name,
        stack="local",
        config=config,
        secret_keys=["vinylhound:spotifyClientSecret"],
    )
    assert "plaintext-spotify-value" not in json.dumps([r.record() for r in run.registrations])
    assert "SPOTIFY_CLIENT_SECRET" in labels(containers(run)["monolith"])[SECRET_ENV_LABEL]


# --- the edge ----------------------------------------------------------------------------------


def test_gateway_urls_follow_each_services_cutover() -> None:
    run = rendered("local")
    gateway = plain_env(containers(run)["api-gateway"])
    for service in (w for w in catalog.WORKLOADS if w.role == "service"):
        settings = CFG.services.get(service.name)
        cut_over = settings is not None and settings.enabled and settings.cutover.weight == 100
        expected = service if cut_over else catalog.workload("monolith")
        assert reachable(gateway[service.url_env], run)[:2] == (expected.name, expected.port), service.name


def test_every_request_the_local_gateway_forwards_reaches_a_workload_that_serves_it() -> None:
    # The api-gateway is the local edge and forwards whole prefixes; no service serves all of its
    # prefixes the way the monolith does (infra/catalog.py), so each upstream is the monolith.
    gateway = containers(rendered("local"))["api-gateway"]
    for name, url in plain_env(gateway).items():
        if name.endswith("_SERVICE_URL"):
            assert reachable(url, rendered("local"))[0] == "monolith", name


def test_the_front_ends_api_proxy_reaches_the_gateway_after_it_is_up() -> None:
    run = rendered("local")
    frontend, gateway = catalog.workload("web-frontend"), containers(run)["api-gateway"]
    assert frontend.api_upstream_host in aliases(gateway)
    assert gateway.urn in containers(run)["web-frontend"].dependencies


def test_gateway_starts_after_what_it_routes_to() -> None:
    run = rendered("local")
    gateway = containers(run)["api-gateway"]
    for url in (v for k, v in plain_env(gateway).items() if k.endswith("_SERVICE_URL")):
        upstream = reachable(url, run)[0]
        assert containers(run)[upstream].urn in gateway.dependencies


def test_exports_name_the_urls_and_every_database_port() -> None:
    run = rendered("local")
    published = {
        name: {p["external"] for p in reg.inputs.get("ports") or []} for name, reg in containers(run).items()
    }
    for key, host in {"appUrl": "web-frontend", "jaegerUrl": "jaeger", "prometheusUrl": "prometheus"}.items():
        assert int(run.exports[key].rsplit(":", 1)[1]) in published[host]
    assert int(run.exports["consulUrl"].rsplit(":", 1)[1]) in published["consul"]
    owners = {w.name for w in ENABLED if w.database is not None}
    assert set(run.exports["databasePorts"]) == owners
    for owner, port in run.exports["databasePorts"].items():
        assert published[f"{owner}-db"] == {port}


# --- Consul ------------------------------------------------------------------------------------


def consul_services(run: Run) -> dict[str, Any]:
    config = json.loads(uploaded(containers(run)["consul"], "/consul/config/vinylhound-services.json"))
    return {s["name"]: s for s in config["services"]}


def test_consul_declares_every_workload_with_an_http_check_on_its_health_path() -> None:
    run = rendered("local")
    services = consul_services(run)
    assert set(services) == {w.name for w in ENABLED}
    for w in ENABLED:
        (check,) = services[w.name]["checks"]
        host, port, path = reachable(check["http"], run)
        assert (host, port, path) == (w.name, w.port, w.health_path or "/")
        assert (services[w.name]["address"], services[w.name]["port"]) == (w.name, w.port)


def test_consul_health_urls_are_what_the_containers_check_themselves() -> None:
    run = rendered("local")
    for w in ENABLED:
        own = containers(run)[w.name].inputs["healthcheck"]["tests"][-1]
        (check,) = consul_services(run)[w.name]["checks"]
        assert own.split(":", 2)[2] == check["http"].split(":", 2)[2]  # same port and path


# --- Prometheus --------------------------------------------------------------------------------


def prometheus_yml(run: Run) -> str:
    return uploaded(containers(run)["prometheus"], "/etc/prometheus/prometheus.yml")


def _relabel(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str]:
    """Prometheus' ``replace`` relabelling, enough to evaluate the generated rules."""
    result = dict(labels)
    for rule in rules:
        assert rule.get("action", "replace") == "replace"
        value = rule.get("separator", ";").join(result.get(s, "") for s in rule.get("source_labels", []))
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if match:
            replacement = re.sub(r"\$(\d+)", r"\\\1", rule.get("replacement", "$1"))
            result[rule["target_label"]] = match.expand(replacement)
    return result


def scrape_targets(config: dict[str, Any], job_name: str) -> list[dict[str, str]]:
    """The final label sets of one job's targets, after relabelling."""
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == job_name]
    params = {f"__param_{k}": v[0] for k, v in (job.get("params") or {}).items()}
    return [
        _relabel(
            {
                "__address__": t,
                "__metrics_path__": job.get("metrics_path", "/metrics"),
                **params,
                **group["labels"],
            },
            job.get("relabel_configs", []),
        )
        for group in job["static_configs"]
        for t in group["targets"]
    ]


def test_prometheus_probes_every_workload_through_the_blackbox_exporter() -> None:
    run = rendered("local")
    config = yaml.safe_load(prometheus_yml(run))
    targets = {t["workload"]: t for t in scrape_targets(config, "vinylhound-health")}
    assert set(targets) == {w.name for w in ENABLED}
    for w in ENABLED:
        target = targets[w.name]
        assert target["__address__"] == "blackbox-exporter:9115" and target["__metrics_path__"] == "/probe"
        assert reachable(target["__param_target"], run) == (w.name, w.port, w.health_path or "/")
        assert target["instance"] == target["__param_target"]


def test_prometheus_scrapes_the_platforms_own_metrics() -> None:
    run = rendered("local")
    config = yaml.safe_load(prometheus_yml(run))
    for job in ("consul", "jaeger", "blackbox-exporter"):
        (target,) = scrape_targets(config, job)
        host = target["__address__"].split(":")[0]
        assert any(host in aliases(reg) for reg in containers(run).values()), job


def test_promtool_accepts_the_generated_scrape_config(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/install-tools.sh installs Debian's prometheus package"
    path = tmp_path / "prometheus.yml"
    path.write_text(prometheus_yml(rendered("local")))
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- render ------------------------------------------------------------------------------------


def test_render_writes_a_container_summary_and_the_uploaded_files(tmp_path: Path) -> None:
    from ops.render import render

    render(PROJECT, "local", tmp_path / "local")
    summary = yaml.safe_load((tmp_path / "local" / "docker" / "containers.yaml").read_text())
    assert summary["vinylhound-user-service"]["env"].count("DB_PASSWORD=[secret]") == 1
    # user-service publishes: it starts after its database and after the streams exist.
    assert summary["vinylhound-user-service"]["startsAfter"] == [
        "vinylhound-nats-setup",
        "vinylhound-user-service-db",
    ]
    files = tmp_path / "local" / "docker" / "files"
    assert (files / "vinylhound-prometheus" / "etc" / "prometheus" / "prometheus.yml").is_file()
    assert not list((tmp_path / "local" / "manifests").iterdir())


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_kubernetes_stacks_register_no_docker_resources(stack: str) -> None:
    assert not [
        r for r in rendered(stack).registrations if r.type.startswith(("docker:", "vinylhound:docker:"))
    ]


# --- first-start schemas -----------------------------------------------------------------------


def created_tables(sql: str) -> set[str]:
    return set(re.findall(r'CREATE TABLE IF NOT EXISTS "([a-z_]+)"', sql))


def referenced_tables(sql: str) -> set[str]:
    return set(re.findall(r'REFERENCES "([a-z_]+)"', sql))


DATABASE_OWNERS = [w for w in ENABLED if w.database is not None]


def init_scripts(run: Run) -> dict[str, str]:
    """The first-start SQL mounted into each workload's database container, by workload."""
    return {w.name: uploaded(containers(run)[f"{w.name}-db"], INIT_SQL) for w in DATABASE_OWNERS}


def test_each_database_container_runs_the_generated_schema_of_its_database() -> None:
    for name, sql in init_scripts(rendered("local")).items():
        w = catalog.workload(name)
        generated = (
            migration.monolith_schema_sql() if w.role == "monolith" else migration.service_schema_sql(w)
        )
        assert sql.endswith(generated), name


def test_the_monolith_database_starts_with_all_17_tables_and_the_favorites_trigger() -> None:
    sql = init_scripts(rendered("local"))["monolith"]
    assert created_tables(sql) == set(schema.names()) and len(created_tables(sql)) == 17
    assert '"trg_create_favorites_playlist" AFTER INSERT ON "users"' in sql


def test_each_service_database_starts_with_exactly_its_own_tables_and_no_foreign_key_leaving_them() -> None:
    for name, sql in init_scripts(rendered("local")).items():
        if name == "monolith":
            continue
        owned = {t.name for t in migration.owned_tables(catalog.workload(name))}
        assert created_tables(sql) == owned, name
        assert referenced_tables(sql) <= owned, name
        assert "create_default_favorites_playlist" not in sql, name


def test_the_init_scripts_create_the_expected_tables_on_a_real_postgresql(pg_server: pg.Server) -> None:
    for name, sql in init_scripts(rendered("local")).items():
        dbname = f"local_init_{name.replace('-', '_')}"
        pg_server.create_database(dbname)
        try:
            with pg_server.connect(dbname) as conn:
                conn.execute(sql)
                tables = {
                    row[0]
                    for row in conn.execute(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                    ).fetchall()
                }
                triggers = {
                    row[0] for row in conn.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
                }
        finally:
            pg_server.drop_database(dbname)
        expected = created_tables(sql)
        assert tables == expected and expected, name
        assert ("trg_create_favorites_playlist" in triggers) == (name == "monolith"), name


# --- the event bus -----------------------------------------------------------------------------


def nats_conf(run: Run) -> dict[str, Any]:
    """The NATS container's configuration, parsed (``$VAR`` references kept as strings)."""
    text = uploaded(containers(run)["nats"], "/etc/nats/nats-server.conf")
    parsed: dict[str, Any] = json.loads(re.sub(r": (\$[A-Z0-9_]+)", r': "\1"', text))
    return parsed


def image_of(run: Run, component: str) -> str:
    (image,) = [
        r.inputs["name"]
        for r in run.registrations
        if r.type == REMOTE_IMAGE and r.name == f"{component}-image"
    ]
    return str(image)


def test_nats_runs_the_pinned_official_alpine_image_with_jetstream_on_a_named_volume() -> None:
    run = rendered("local")
    assert re.fullmatch(r"nats:\d+\.\d+\.\d+-alpine", image_of(run, "nats"))
    conf = nats_conf(run)
    (mount,) = containers(run)["nats"].inputs["volumes"]
    assert conf["jetstream"]["store_dir"].startswith(mount["containerPath"] + "/")
    assert mount["volumeName"] in {
        r.inputs["name"] for r in run.registrations if r.type == "docker:index/volume:Volume"
    }


def test_nats_publishes_clients_and_monitoring_on_loopback_only() -> None:
    ports = containers(rendered("local"))["nats"].inputs["ports"]
    assert {p["internal"] for p in ports} == {4222, 8222}
    assert {p["ip"] for p in ports} == {"127.0.0.1"}
    assert nats_conf(rendered("local"))["port"] == 4222 and nats_conf(rendered("local"))["http_port"] == 8222


def test_nats_is_healthy_when_its_monitoring_healthz_answers() -> None:
    nats = containers(rendered("local"))["nats"]
    assert nats.inputs["healthcheck"]["tests"] == [
        "CMD",
        "wget",
        "-q",
        "-O",
        "/dev/null",
        "http://127.0.0.1:8222/healthz",
    ]
    assert nats.inputs["wait"] is True


def test_the_local_users_and_permissions_are_the_kubernetes_ones() -> None:
    (release,) = [
        r
        for r in rendered("dev").registrations
        if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs["name"] == "nats"
    ]
    kube = {
        u["user"]: u["permissions"]
        for u in release.inputs["values"]["config"]["merge"]["authorization"]["users"]
    }
    local = {u["user"]: u["permissions"] for u in nats_conf(rendered("local"))["authorization"]["users"]}
    assert local == kube


def test_nats_reads_each_password_from_a_secret_variable_it_is_given() -> None:
    run = rendered("local")
    nats = containers(run)["nats"]
    referenced = {u["password"].lstrip("$") for u in nats_conf(run)["authorization"]["users"]}
    assert set(labels(nats)[SECRET_ENV_LABEL].split(",")) == referenced
    assert nats.inputs["envs"] == [MASK] * len(referenced)


def test_only_publishing_and_consuming_workloads_get_nats_credentials_as_secrets() -> None:
    run = rendered("local")
    users = {u["user"] for u in nats_conf(run)["authorization"]["users"]}
    for w in ENABLED:
        reg = containers(run)[w.name]
        if not (w.publishes or w.consumes):
            assert not env_names(reg) & NATS_CLIENT, w.name
            continue
        assert w.name in users
        assert {"NATS_USER", "NATS_PASSWORD"} <= set(labels(reg)[SECRET_ENV_LABEL].split(",")), w.name
        url = plain_env(reg)["NATS_URL"]
        host, port = re.fullmatch(r"nats://([a-z0-9-]+):(\d+)", url).groups()  # type: ignore[union-attr]
        owners = [name for name, c in containers(run).items() if host in aliases(c)]
        assert owners == ["nats"] and int(port) == nats_conf(run)["port"], w.name
    assert {w.name for w in ENABLED if w.publishes or w.consumes} == {"user-service", "playlist-service"}


def test_a_one_shot_nats_box_creates_every_stream_and_consumer_with_the_controller_user() -> None:
    run = rendered("local")
    setup = containers(run)["nats-setup"]
    assert one_shot(setup) and setup.inputs["restart"] == "no"
    assert re.fullmatch(r"natsio/nats-box:\d+\.\d+\.\d+", image_of(run, "nats-setup"))
    assert containers(run)["nats"].urn in setup.dependencies
    assert plain_env(setup)["NATS_USER"] == events.CONTROLLER_USER
    assert labels(setup)[SECRET_ENV_LABEL] == "NATS_PASSWORD"
    files = {u["file"]: u["content"] for u in setup.inputs["uploads"]}
    stream = json.loads(files["/setup/streams/VINYLHOUND_USER.json"])
    assert stream["subjects"] == ["vinylhound.user.created"] and stream["num_replicas"] == 1
    consumer = json.loads(files["/setup/consumers/VINYLHOUND_USER/playlist-service.json"])
    assert consumer["durable_name"] == "playlist-service" and consumer["ack_policy"] == "explicit"
    assert setup.inputs["command"] == ["sh", "/setup/setup.sh"] and "/setup/setup.sh" in files


def test_bus_clients_start_after_the_streams_exist() -> None:
    run = rendered("local")
    setup = containers(run)["nats-setup"].urn
    for w in ENABLED:
        assert (setup in containers(run)[w.name].dependencies) == bool(w.publishes or w.consumes), w.name


def test_prometheus_probes_nats_health_through_the_blackbox_exporter() -> None:
    run = rendered("local")
    config = yaml.safe_load(prometheus_yml(run))
    (target,) = scrape_targets(config, "platform-health")
    assert target["__address__"] == f"{plan.BLACKBOX}:{plan.BLACKBOX_PORT}"
    assert target["__param_target"] == "http://nats:8222/healthz?js-enabled-only=true"
    assert reachable(target["__param_target"], run)[:2] == ("nats", 8222)


def test_without_events_the_local_stack_has_no_nats_and_no_client_wiring() -> None:
    raw = json.loads(PROJECT.stack_config("local").values[FULL_KEY])
    raw["events"] = {"enabled": False}
    config = dict(PROJECT.stack_config("local").values)
    config[FULL_KEY] = json.dumps(raw)
    run = run_offline(program, project=PROJECT.name, stack="local", config=config, secret_keys=[])
    assert not {"nats", "nats-setup"} & set(containers(run))
    assert not any(env_names(reg) & NATS_CLIENT for reg in containers(run).values())
    assert "platform-health" not in prometheus_yml(run)


def test_nats_server_accepts_the_rendered_local_configuration(tmp_path: Path) -> None:
    conf = tmp_path / "nats-server.conf"
    text = uploaded(containers(rendered("local"))["nats"], "/etc/nats/nats-server.conf")
    conf.write_text(text.replace('"/data/jetstream"', json.dumps(str(tmp_path / "js"))))
    passwords = dict.fromkeys(re.findall(r"\$(NATS_PASSWORD_[A-Z0-9_]+)", text), "x" * 32)
    assert len(passwords) == len(nats_conf(rendered("local"))["authorization"]["users"])
    result = subprocess.run(
        [natsd.binary(), "-t", "-c", str(conf)], env=passwords, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
