"""The ingress gateway's metrics (the migration dashboard's edge series) are scraped: the rendered
PodMonitor selects the gateway pods as the Istio gateway chart labels them, on the chart's Envoy
stats port, where kube-prometheus-stack's Prometheus looks, after both releases exist."""

from __future__ import annotations

from typing import Any

import pytest

from ops.mockrun import Registration
from ops.render import HELM_RELEASE
from tests.conftest import KUBE_STACKS, manifests_of, rendered
from tests.netpol import Cluster, Pod

#: The container port the gateway chart declares on its ``istio-proxy`` container.
CHART_METRICS_PORT = ("http-envoy-prom", 15090)


def release(stack: str, name: str) -> Registration:
    (r,) = [r for r in rendered(stack).registrations if r.type == HELM_RELEASE and r.inputs["name"] == name]
    return r


def gateway_pod_labels(gateway: Registration) -> dict[str, str]:
    """The pod template labels of the istio/gateway chart for this release, computed as the chart
    does. Source: istio/istio manifests/charts/gateway/templates/_helpers.tpl (``gateway.name``:
    ``.Values.name`` else the release name; ``gateway.selectorLabels``: ``app`` = that name,
    ``istio`` = that name without the ``istio-`` prefix, each overridable by ``.Values.labels``)
    and templates/deployment.yaml (template labels: ``sidecar.istio.io/inject: "true"``, the
    selector labels, ``app.kubernetes.io/name``, and the other ``.Values.labels``)."""
    values: dict[str, Any] = gateway.inputs.get("values") or {}
    name = values.get("name") or gateway.inputs["name"]
    extra: dict[str, str] = values.get("labels") or {}
    return {
        "sidecar.istio.io/inject": "true",
        "app": extra.get("app", name),
        "istio": extra.get("istio", name.removeprefix("istio-")),
        "app.kubernetes.io/name": name,
        **{k: v for k, v in extra.items() if k not in ("app", "istio")},
    }


def edge_monitor(stack: str) -> dict[str, Any]:
    gateway_ns = release(stack, "istio-ingressgateway").inputs["namespace"]
    (monitor,) = [
        m
        for m in manifests_of(rendered(stack))
        if m["kind"] == "PodMonitor" and m["metadata"]["namespace"] == gateway_ns
    ]
    return monitor


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_the_edge_monitor_selects_the_gateway_pods_as_the_chart_labels_them(stack: str) -> None:
    labels = gateway_pod_labels(release(stack, "istio-ingressgateway"))
    selector = edge_monitor(stack)["spec"]["selector"]
    assert set(selector) == {"matchLabels"} and selector["matchLabels"]
    assert all(labels.get(k) == v for k, v in selector["matchLabels"].items())


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_the_edge_monitor_scrapes_envoys_stats_port(stack: str) -> None:
    (endpoint,) = edge_monitor(stack)["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == (CHART_METRICS_PORT[0], "/stats/prometheus")


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_prometheus_selects_pod_monitors_in_the_gateway_namespace(stack: str) -> None:
    spec = release(stack, "kube-prometheus-stack").inputs["values"]["prometheus"]["prometheusSpec"]
    # Off: an empty selector (every PodMonitor) instead of the chart's release-label one; the
    # namespace selector is left at the chart's default ``{}`` (every namespace).
    assert spec["podMonitorSelectorNilUsesHelmValues"] is False
    assert spec.get("podMonitorSelector") in (None, {})
    assert spec.get("podMonitorNamespaceSelector") in (None, {})


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_the_edge_monitor_waits_for_the_operator_and_the_gateway(stack: str) -> None:
    (reg,) = [r for r in rendered(stack).registrations if r.name == "observability-ingress-gateway-monitor"]
    needed = {release(stack, "kube-prometheus-stack").urn, release(stack, "istio-ingressgateway").urn}
    assert needed <= set(reg.dependencies)


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_the_network_policies_let_prometheus_reach_the_gateway_pods_stats_port(stack: str) -> None:
    gateway = release(stack, "istio-ingressgateway")
    values = gateway.inputs.get("values") or {}
    # The chart renders its own NetworkPolicy only with global.networkPolicy.enabled: the
    # platform's policies (evaluated below) are the only ones.
    assert not ((values.get("global") or {}).get("networkPolicy") or {}).get("enabled")
    objects = manifests_of(rendered(stack))
    namespaces = {
        o["metadata"]["name"]: o["metadata"].get("labels") or {} for o in objects if o["kind"] == "Namespace"
    }
    cluster = Cluster(namespaces, [o for o in objects if o["kind"] == "NetworkPolicy"])
    name, port = CHART_METRICS_PORT
    pod = Pod("gateway", gateway.inputs["namespace"], gateway_pod_labels(gateway), {name: port})
    # kube-prometheus-stack's Prometheus pods, as the Prometheus Operator labels them.
    prometheus_ns = release(stack, "kube-prometheus-stack").inputs["namespace"]
    prometheus = Pod("prometheus", prometheus_ns, {"app.kubernetes.io/name": "prometheus"})
    assert cluster.allowed(prometheus, pod, port)
    assert not cluster.allowed(prometheus, pod, 15000)  # the pod is isolated: Envoy's admin port is not open
