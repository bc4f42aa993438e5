"""Constrained value types, the strict base model and ``Problem``, shared by every config module."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

Environment = Literal["local", "dev", "staging", "prod"]
Target = Literal["kubernetes", "docker"]

#: The fewest replicas a workload may run with, per environment (architecture.md, Environments).
MIN_REPLICAS: dict[str, int] = {"local": 1, "dev": 1, "staging": 2, "prod": 3}


# --- reusable constrained types ------------------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$")
_QUANTITY_CPU = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$")
_QUANTITY_MEM = re.compile(r"^[0-9]+(Ki|Mi|Gi|Ti)$")
_SEMVER = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$")
# Go's time.Duration as JetStream and NACK read it, restricted to the units both sides share.
_GO_DURATION = re.compile(r"^([0-9]+(ms|s|m|h))+$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
_STORAGE = re.compile(r"^[0-9]+(Mi|Gi|Ti)$")
_OBJECT_STORE = re.compile(r"^(s3|gs|https)://[^\s]+$")
_RETENTION = re.compile(r"^[1-9][0-9]*[dwm]$")
#: A postgresql.conf parameter name.
PG_PARAMETER_NAME = re.compile(r"^[a-z_][a-z0-9_.]*$")


# CloudNativePG schedules (robfig/cron with seconds): six fields, seconds first.
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("seconds", 0, 59, ()),
    ("minutes", 0, 59, ()),
    ("hours", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day-of-week", 0, 6, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_CRON_TERM = re.compile(r"^(?:(\*|\?)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9]+))?$")


def _cron_value(token: str, low: int, high: int, names: tuple[str, ...]) -> int | None:
    if token.isdigit():
        value = int(token)
    elif token in names:
        value = names.index(token) + low
    else:
        return None
    return value if low <= value <= high else None


def _cron_field_problem(text: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    """Why one cron field is invalid (``None`` if it is valid): lists of ``*``, ``?``, values,
    ranges, each with an optional ``/step``."""
    for term in text.lower().split(","):
        match = _CRON_TERM.match(term)
        if match is None:
            return f"{term!r} is not *, ?, a value, a range or a step"
        wildcard, start, end, step = match.groups()
        if step is not None and int(step) == 0:
            return f"{term!r} has a zero step"
        if wildcard is not None:
            continue
        first = _cron_value(start, low, high, names)
        last = first if end is None else _cron_value(end, low, high, names)
        if first is None or last is None:
            allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
            return f"{term!r} is out of range ({allowed})"
        if last < first:
            return f"{term!r} is a backwards range"
    return None


def _cnpg_cron(value: str) -> str:
    fields = value.split()
    if len(fields) != len(_CRON_FIELDS):
        raise ValueError(
            f"{value!r} is not a six-field cron schedule "
            "(seconds minutes hours day-of-month month day-of-week, e.g. '0 0 3 * * *')"
        )
    for text, (what, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        problem = _cron_field_problem(text, low, high, names)
        if problem is not None:
            raise ValueError(f"{value!r}: {what} field {problem}")
    return value


#: A CloudNativePG ``ScheduledBackup`` schedule: six validated cron fields, seconds first.
CnpgCron = Annotated[str, AfterValidator(_cnpg_cron)]


def _matching(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not a valid {what}")
        return value

    return AfterValidator(check)


def _pinned_tag(value: str) -> str:
    if value.lower() == "latest":
        raise ValueError("image tag 'latest' is not pinned; use a release tag or a digest")
    if not _TAG.match(value):
        raise ValueError(f"{value!r} is not a valid image tag")
    return value


def _pinned_image(value: str) -> str:
    name, _, digest = value.partition("@")
    if digest and not _DIGEST.match(digest):
        raise ValueError(f"{value!r} has an invalid digest (sha256:<64 hex>)")
    repository, tag = name, None
    if ":" in name.rsplit("/", 1)[-1]:
        repository, tag = name.rsplit(":", 1)
    if not _REGISTRY.match(repository):
        raise ValueError(f"{value!r} is not a valid image reference")
    if tag is None and not digest:
        raise ValueError(f"{value!r} is not pinned; add a release tag or a digest")
    if tag is not None:
        _pinned_tag(tag)
    return value


DnsLabel = Annotated[str, _matching(_DNS_LABEL, "DNS label (lowercase, digits, '-', <= 63)")]
Hostname = Annotated[str, _matching(_HOSTNAME, "lowercase DNS hostname")]
ImageTag = Annotated[str, AfterValidator(_pinned_tag)]
#: A full image reference (``postgres:17.6-alpine``) with a tag that is not ``latest`` or a digest.
PinnedImage = Annotated[str, AfterValidator(_pinned_image)]
ImageDigest = Annotated[str, _matching(_DIGEST, "image digest (sha256:<64 hex>)")]
Registry = Annotated[str, _matching(_REGISTRY, "image registry (host[:port]/path, no tag)")]
CpuQuantity = Annotated[str, _matching(_QUANTITY_CPU, "CPU quantity (e.g. 250m or 1)")]
MemoryQuantity = Annotated[str, _matching(_QUANTITY_MEM, "memory quantity (e.g. 256Mi)")]
ChartVersion = Annotated[str, _matching(_SEMVER, "pinned chart version (x.y.z)")]
ObjectStorePath = Annotated[str, _matching(_OBJECT_STORE, "object store path (s3://, gs://, https://)")]
BackupRetention = Annotated[str, _matching(_RETENTION, "retention (e.g. 30d, 4w, 6m)")]
Percent = Annotated[int, Field(ge=0, le=100)]
#: A duration both Go (JetStream, NACK) and Prometheus parse, e.g. ``30s``, ``2m``, ``168h``.
Duration = Annotated[str, _matching(_GO_DURATION, "duration (digits with ms, s, m or h, e.g. 30s, 168h)")]


def duration_seconds(value: str) -> float:
    """Seconds in a ``Duration`` string (``1h30m`` -> 5400.0)."""
    return sum(
        int(amount) * _DURATION_UNITS[unit] for amount, unit in re.findall(r"([0-9]+)(ms|s|m|h)", value)
    )


_QUANTITY_FACTORS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


def quantity_bytes(value: str) -> int:
    """Bytes in a ``MemoryQuantity`` string (``1Gi`` -> 1073741824)."""
    return int(value[:-2]) * _QUANTITY_FACTORS[value[-2:]]


def cpu_millicores(value: str) -> int:
    """Millicores in a ``CpuQuantity`` string (``250m`` -> 250, ``1.5`` -> 1500)."""
    if value.endswith("m"):
        return int(value[:-1])
    return int(Decimal(value) * 1000)


#: A Prometheus duration such as ``15d`` or ``168h`` (Go durations have no days).
PromDuration = Annotated[str, _matching(re.compile(r"^[0-9]+(ms|s|m|h|d|w|y)$"), "duration (e.g. 15d, 168h)")]
#: A Prometheus byte size such as ``45GB`` (``retentionSize``).
ByteSize = Annotated[str, _matching(re.compile(r"^[0-9]+(B|KB|MB|GB|TB|PB)$"), "byte size (e.g. 45GB)")]
_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[^\s]*)?$")
Url = Annotated[str, _matching(_URL, "http(s) URL")]
StorageSize = Annotated[str, _matching(_STORAGE, "storage size (e.g. 10Gi)")]
# What a browser sends in the Origin header: scheme, host and optional port; no path, no slash.
_ORIGIN = re.compile(r"^https?://[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")
#: A CORS origin such as ``https://vinylhound.app`` or ``http://localhost:5173``.
Origin = Annotated[str, _matching(_ORIGIN, "http(s) origin (scheme://host[:port], no path)")]


#: Every count and number a stack sets lands in a Kubernetes int32 field (replicas, instances,
#: ports, thresholds); the API server rejects larger ones only at apply time.
INT32_MAX = 2**31 - 1


class Model(BaseModel):
    """Base for every config model: camelCase keys as in Pulumi config, strict, frozen."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
    )

    @field_validator("*", mode="after")
    @classmethod
    def _int32(cls, value: object) -> object:
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and not -INT32_MAX - 1 <= value <= INT32_MAX
        ):
            raise ValueError(
                f"{value} is out of range: Kubernetes takes 32-bit integers (at most {INT32_MAX})"
            )
        return value


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a stack's config: where (dotted path below the key) and what.
    ``key`` is the stack setting it is about (default: ``vinylhound:platform``)."""

    path: str
    message: str
    key: str = ""
