"""Observability as pure data: tracing wiring, monitors, alert rules and dashboards.

Nothing here registers a resource or reads config; ``infra/targets/kubernetes/observability.py``
does that with what these functions return. The Vinylhound binaries have no /metrics endpoint and
no OpenTelemetry code, so every signal comes from the Istio sidecar (metrics and spans) and from
kube-state-metrics and CloudNativePG's exporters.
"""
