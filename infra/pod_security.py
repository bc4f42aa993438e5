"""Pod Security Admission labels for the namespaces the program declares.

Every namespace enforces a Pod Security Standard at admission and audits and warns at
``restricted``, so a chart's pod that would not pass ``restricted`` shows up in the audit log and
in ``kubectl`` warnings even where a looser level is enforced. The versions are pinned so a cluster
upgrade does not tighten the rules under running workloads unannounced.
"""

from __future__ import annotations

from typing import Literal

Level = Literal["restricted", "baseline", "privileged"]

#: The Pod Security Standards version the labels pin (the cluster's minor version or older).
VERSION = "v1.33"
PREFIX = "pod-security.kubernetes.io"

#: Why a namespace enforces less than ``restricted``: one place, also quoted in docs/security.md.
EXCEPTIONS: dict[str, tuple[Level, str]] = {
    "istio-system": (
        "privileged",
        "the istio-cni agent DaemonSet runs as root with NET_ADMIN, NET_RAW, SYS_ADMIN, SYS_PTRACE "
        "and DAC_OVERRIDE and writes the CNI plugin to the host (hostPath): what lets every other "
        "namespace's pods run without privileges",
    ),
    "monitoring": (
        "privileged",
        "kube-prometheus-stack's node-exporter DaemonSet reads the host (hostNetwork, hostPID, "
        "hostPath) to report node metrics",
    ),
    "nats": ("baseline", "the NATS chart's pods set no runAsNonRoot, seccomp or capability drop"),
    "observability": (
        "baseline",
        "the Jaeger chart's pods are not checked against restricted (the values set no pod security context)",
    ),
}


def level(namespace: str) -> Level:
    """The level ``namespace`` enforces: ``restricted`` unless listed in ``EXCEPTIONS``."""
    return EXCEPTIONS[namespace][0] if namespace in EXCEPTIONS else "restricted"


def labels(namespace: str) -> dict[str, str]:
    """The Pod Security Admission labels of ``namespace``: enforce its level, audit and warn at
    ``restricted``, every version pinned."""
    result: dict[str, str] = {}
    for mode, value in (("enforce", level(namespace)), ("audit", "restricted"), ("warn", "restricted")):
        result[f"{PREFIX}/{mode}"] = value
        result[f"{PREFIX}/{mode}-version"] = VERSION
    return result
