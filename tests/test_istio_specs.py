"""Pure Istio spec builders and the ServiceTraffic component, without a stack."""

from __future__ import annotations

import pulumi
import pytest

from components.kubernetes import istio
from components.kubernetes.istio import Backend, Resilience
from components.kubernetes.service_traffic import TYPE, ServiceTraffic, ServiceTrafficArgs
from tests.conftest import run_program
from tests.istio_routing import route

POLICY = Resilience("15s", 2, "5s")


def test_a_route_whose_weights_do_not_add_up_to_100_is_refused() -> None:
    with pytest.raises(ValueError, match="weights must add up to 100"):
        istio.http_route("r", None, [Backend("a", 80, 60), Backend("b", 80, 30)], POLICY)


def test_zero_weight_destinations_are_left_out() -> None:
    r = istio.http_route("r", None, [Backend("a.ns", 80, 0), Backend("b.ns", 80, 100)], POLICY)
    assert [d["destination"]["host"] for d in r["route"]] == ["b.ns"]


def test_segment_matches_do_not_catch_sibling_paths() -> None:
    spec = {
        "http": [
            istio.http_route("me", istio.uri_matches("/api/v1/me/"), [Backend("me.ns", 1)], POLICY),
            istio.http_route("rest", None, [Backend("rest.ns", 1)], POLICY),
        ]
    }
    assert route(spec, "/api/v1/me").route == "me"
    assert route(spec, "/api/v1/me?x=1").route == "me"
    assert route(spec, "/api/v1/me/x").route == "me"
    assert route(spec, "/api/v1/media").route == "rest"


def test_plain_http_gateway_serves_port_80_without_redirect() -> None:
    servers = {
        s["port"]["number"]: s for s in istio.gateway_spec({"istio": "x"}, ["h"], "tls", True)["servers"]
    }
    assert "tls" not in servers[80] and servers[443]["tls"]["mode"] == "SIMPLE"


def test_service_traffic_registers_its_objects_as_children_after_the_crds() -> None:
    def program() -> None:
        crds = pulumi.CustomResource("test:index:Crds", "crds")
        ServiceTraffic(
            "svc-traffic",
            ServiceTrafficArgs(
                name="svc",
                namespace="ns",
                host="svc.ns.svc.cluster.local",
                port=8001,
                selector={"app.kubernetes.io/name": "svc"},
                principals=["cluster.local/ns/edge/sa/gw"],
            ),
            pulumi.ResourceOptions(depends_on=[crds]),
        )

    regs = {r.name: r for r in run_program(program)}
    component = regs["svc-traffic"]
    assert component.type == TYPE
    crds = regs["crds"].urn
    for child in ("svc-traffic-destinationrule", "svc-traffic-authorization"):
        assert regs[child].parent == component.urn and crds in regs[child].dependencies
        assert regs[child].inputs["metadata"]["name"] == "svc"
