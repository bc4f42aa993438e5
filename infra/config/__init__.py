"""Typed stack configuration: the one place that knows what a stack file may say.

A stack file holds one structured key, ``vinylhound:platform``. It is parsed into
``PlatformConfig`` (strict: unknown keys are rejected, models are frozen), then the
per-environment rules run. Every problem is reported at once as
``stacks/Pulumi.<stack>.yaml: vinylhound:platform.<path>: <message>`` and nothing is registered.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Annotated, Any, get_args

from pydantic import Field, PrivateAttr, ValidationError

from infra import catalog
from infra.config.databases import (
    BACKUP_REQUIRED,
    MIN_DB_INSTANCES,
    BackupTarget,
    DatabasesConfig,
    DatabaseStorage,
    ExternalDatabase,
    MigrationPhase,
    RestoreFrom,
    database_rules,
)
from infra.config.events import (
    EventsConfig,
    event_rules,
)
from infra.config.observability import (
    DEFAULT_SAMPLING_PERCENT,
    AlertThresholds,
    Metrics,
    ObservabilityConfig,
    TraceBackend,
    TraceStorage,
    Tracing,
    observability_rules,
)
from infra.config.targets import (
    DOCKER_KEYS,
    DOCKER_WORKLOAD_KEYS,
    target_rules,
)
from infra.config.traffic import (
    REGISTRY_REPLICAS,
    CircuitBreaker,
    EdgeConfig,
    RegistryConfig,
    RoutePolicy,
    TrafficConfig,
    cutover_rules,
    traffic_rules,
)
from infra.config.types import (
    MIN_REPLICAS,
    ByteSize,
    ChartVersion,
    CpuQuantity,
    DnsLabel,
    Duration,
    Environment,
    Hostname,
    ImageDigest,
    ImageTag,
    MemoryQuantity,
    Model,
    Origin,
    Percent,
    PinnedImage,
    Problem,
    PromDuration,
    Registry,
    StorageSize,
    Target,
    Url,
    cpu_millicores,
    duration_seconds,
    quantity_bytes,
)
from infra.config.views import view
from infra.config.workloads import (
    Autoscaling,
    ChartVersions,
    Cutover,
    DockerSettings,
    ImageRef,
    PlatformImages,
    ResourceAmounts,
    Resources,
    WorkloadConfig,
    resource_rules,
)

CONFIG_NAMESPACE = "vinylhound"
CONFIG_KEY = "platform"
FULL_KEY = f"{CONFIG_NAMESPACE}:{CONFIG_KEY}"


def stack_file(stack: str) -> str:
    """The stack file a stack's config comes from, relative to the repository root."""
    return f"stacks/Pulumi.{stack}.yaml"


class PlatformConfig(Model):
    """Everything a stack says about the platform (the ``vinylhound:platform`` key)."""

    environment: Environment
    target: Target = "kubernetes"
    namespace: DnsLabel = "vinylhound"
    domain: Hostname
    image_registry: Registry
    #: Default: ``https://<domain>`` only. A YAML list, hence not strict (strict wants a tuple).
    cors_allowed_origins: Annotated[tuple[Origin, ...], Field(strict=False)] | None = None
    services: dict[str, WorkloadConfig]
    #: The monolith's Spotify client id (not secret); its secret is ``vinylhound:spotifyClientSecret``.
    spotify_client_id: str | None = None
    charts: ChartVersions = ChartVersions()
    traffic: TrafficConfig = TrafficConfig()
    #: Only for ``target: docker``; default there: ``DockerSettings()``.
    docker: DockerSettings | None = None
    #: Kubernetes only: tracing, metrics and alerting (see ``ObservabilityConfig``).
    observability: ObservabilityConfig = ObservabilityConfig()
    events: EventsConfig = EventsConfig()
    databases: DatabasesConfig = DatabasesConfig()
    #: Derived views (``infra.config.views``), computed on first use.
    _views: dict[str, Any] = PrivateAttr(default_factory=dict)

    def docker_settings(self) -> DockerSettings:
        """The docker settings in force (the defaults when the stack sets none)."""
        return self.docker or DockerSettings()

    def enabled(self) -> tuple[tuple[catalog.Workload, WorkloadConfig], ...]:
        """The enabled workloads with their settings, in catalog order (computed once)."""
        return _enabled(self)

    def enabled_names(self) -> frozenset[str]:
        """The names of the enabled workloads (computed once)."""
        return _enabled_names(self)

    def replicas(self, name: str) -> int:
        """The replica count a workload runs with (its setting or the environment minimum)."""
        configured = self.services[name].replicas
        return configured if configured is not None else MIN_REPLICAS[self.environment]

    def event_cluster_size(self) -> int:
        """NATS servers (and stream replicas): the setting, else 1 in local/dev and 3 elsewhere."""
        configured = self.events.cluster_size
        if configured is not None:
            return configured
        return 1 if self.environment in ("local", "dev") else 3

    def is_enabled(self, name: str) -> bool:
        """Whether workload ``name`` is deployed in this stack."""
        svc = self.services.get(name)
        return svc is not None and svc.enabled

    def registry_replicas(self) -> int:
        """Consul server replicas (the setting or the environment default)."""
        configured = self.traffic.registry.server_replicas
        return configured if configured is not None else REGISTRY_REPLICAS[self.environment]

    def origins(self) -> tuple[str, ...]:
        """The CORS origins the services allow."""
        return self.cors_allowed_origins or (f"https://{self.domain}",)


@view
def _enabled(cfg: PlatformConfig) -> tuple[tuple[catalog.Workload, WorkloadConfig], ...]:
    return tuple(
        (w, cfg.services[w.name])
        for w in catalog.WORKLOADS
        if w.name in cfg.services and cfg.services[w.name].enabled
    )


@view
def _enabled_names(cfg: PlatformConfig) -> frozenset[str]:
    return frozenset(w.name for w, _ in cfg.enabled())


class ConfigError(Exception):
    """A stack's config is invalid. ``str()`` is one ``file: key.path: message`` line per problem."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def lines(self) -> list[str]:
        """The problems, one printable line each (values too long to read are shortened)."""
        return [
            shorten(f"{self.source}: {p.key or FULL_KEY}{'.' + p.path if p.path else ''}: {p.message}")
            for p in self.problems
        ]

    def render(self) -> str:
        """All problem lines joined by newlines."""
        return "\n".join(self.lines())


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


#: A word longer than this in a message is cut, so a mistaken 5 MB value is named, not echoed; a
#: line longer than ``_LINE_LIMIT`` too (a long value with spaces). The line limit stays well above
#: the longest message the rules write (a cross-service order lists every path and the way out).
_WORD_LIMIT = 80
_LINE_LIMIT = 2000


def shorten(line: str) -> str:
    """``line`` with every overlong word (a value, a key) and the line itself cut, saying how
    long the original was."""
    words = [f"{w[:60]}…({len(w)} characters)" if len(w) > _WORD_LIMIT else w for w in line.split(" ")]
    text = " ".join(words)
    return text if len(text) <= _LINE_LIMIT else f"{text[:_LINE_LIMIT]}…({len(text)} characters)"


def _string_hint(field: str, value: float) -> str:
    # YAML reads unquoted 2.14 as a number, and 2.10 as 2.1: a tag or quantity must be quoted as
    # meant. The value is shown as YAML read it.
    if isinstance(value, float):
        example = f'{field}: "{value!r}"'
        return f"; YAML read {value!r} as a number: quote it as meant, e.g. {example} (unquoted 2.10 is 2.1)"
    return f'; YAML read {value} as a number: quote it, e.g. {field}: "{value}"'


def _pydantic_problems(err: ValidationError) -> list[Problem]:
    problems = []
    for e in err.errors():
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            message = "unknown key"
        elif e["type"] == "string_type" and isinstance(e["input"], bool):
            message += "; YAML reads unquoted yes/no/on/off/true/false as a boolean: quote it"
        elif e["type"] == "string_type" and isinstance(e["input"], int | float):
            message += _string_hint(str(e["loc"][-1]) if e["loc"] else "value", e["input"])
        problems.append(Problem(_loc(e["loc"]), message))
    return problems


def _resources_everywhere(value: Any, path: str) -> Iterator[Problem]:
    """``resource_rules`` for every ``Resources`` in the config, wherever a model holds one
    (workloads, databases, and any section that adds resources later)."""
    if isinstance(value, Resources):
        yield from resource_rules(path, value)
    elif isinstance(value, Model):
        for name, info in type(value).model_fields.items():
            yield from _resources_everywhere(getattr(value, name), f"{path}.{info.alias or name}".lstrip("."))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _resources_everywhere(item, f"{path}.{key}")


def _rules(cfg: PlatformConfig) -> Iterator[Problem]:
    """Cross-field and per-environment rules, checked after the shape is valid."""
    known = set(catalog.names())
    for name in cfg.services:
        if name not in known:
            yield Problem(
                f"services.{name}", f"unknown workload; the catalog has {', '.join(catalog.names())}"
            )
    monolith = cfg.services.get("monolith")
    if monolith is None or not monolith.enabled:
        yield Problem("services.monolith", "the monolith must be enabled: it serves every route not cut over")

    if cfg.cors_allowed_origins == ():
        yield Problem(
            "corsAllowedOrigins", "empty: list at least one origin, or leave it out for the default"
        )

    minimum = MIN_REPLICAS[cfg.environment]
    for name, svc in cfg.services.items():
        if name not in known:
            continue
        path = f"services.{name}"
        if svc.replicas is not None and svc.replicas < minimum:
            yield Problem(
                f"{path}.replicas",
                f"{svc.replicas} is below the {cfg.environment} minimum of {minimum}",
            )
        scaling = svc.autoscaling
        if scaling is not None:
            if scaling.min_replicas < minimum:
                yield Problem(
                    f"{path}.autoscaling.minReplicas",
                    f"{scaling.min_replicas} is below the {cfg.environment} minimum of {minimum}",
                )
            if scaling.max_replicas < scaling.min_replicas:
                yield Problem(
                    f"{path}.autoscaling.maxReplicas",
                    f"{scaling.max_replicas} is below minReplicas ({scaling.min_replicas})",
                )
            if svc.replicas is not None:
                yield Problem(
                    f"{path}.replicas",
                    "set either replicas or autoscaling, not both (the autoscaler owns the count)",
                )
        elif cfg.environment == "prod" and svc.enabled:
            yield Problem(f"{path}.autoscaling", "prod requires autoscaling for every enabled workload")
        if svc.image.tag is None and svc.image.digest is None:
            yield Problem(f"{path}.image", "pin the image with a tag or a digest")
        yield from cutover_rules(name, svc)
    yield from _resources_everywhere(cfg, "")
    yield from traffic_rules(cfg)
    yield from observability_rules(cfg)
    yield from event_rules(cfg)
    yield from database_rules(cfg)


#: Stack names that ARE environments: such a stack must say that environment (a personal stack
#: such as ``dev-alice`` may set any). The policy config is chosen by stack name, the rules by
#: ``environment``; a prod stack saying ``environment: dev`` would skip every prod rule.
ENVIRONMENT_STACKS: frozenset[str] = frozenset(get_args(Environment))


def stack_rules(cfg: PlatformConfig, stack: str | None) -> Iterator[Problem]:
    """The stack name and ``environment`` agree when the stack is named after an environment."""
    name = stack.rsplit("/", 1)[-1] if stack is not None else None
    if name in ENVIRONMENT_STACKS and cfg.environment != name:
        yield Problem("environment", f"{cfg.environment!r} does not match the stack name {name!r}")


def decode_setting(text: str | None) -> Any:
    """A stack setting as the engine hands it to the program (structured values as JSON, plain
    strings as they are) back to its value; what ``pulumi.Config.get_object`` does, except that a
    plain string stays a string for the validation to name instead of a JSON traceback."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


#: Settings that hold credentials (``infra/stack_secrets.py`` reads them): only ever set with
#: ``pulumi config set --secret``, so the stack file holds ciphertext.
SECRET_SETTINGS: tuple[str, ...] = ("spotifyClientSecret",)


def secret_setting_problems(
    stack: str, setting: Callable[[str], str | None], is_secret: Callable[[str], bool]
) -> list[Problem]:
    """A secret setting present in clear text: refused, naming the command that sets it right.
    ``setting`` and ``is_secret`` answer for full keys (``vinylhound:spotifyClientSecret``)."""
    problems = []
    for name in SECRET_SETTINGS:
        key = f"{CONFIG_NAMESPACE}:{name}"
        if setting(key) is not None and not is_secret(key):
            message = (
                "is in clear text; delete it from the file and set it encrypted with "
                f"`pulumi config set --secret {key} -s {stack}` (it reads the value from stdin)"
            )
            problems.append(Problem("", message, key=key))
    return problems


def unknown_setting_problems(keys: Iterable[str]) -> list[Problem]:
    """Settings in this program's namespace that it does not read: a typo such as
    ``vinylhound:spotifyClientSecert`` would otherwise leave the secret silently unwired. Other
    namespaces (``kubernetes:context``, ...) belong to providers and are left alone."""
    known = [FULL_KEY, *(f"{CONFIG_NAMESPACE}:{name}" for name in SECRET_SETTINGS)]
    return [
        Problem("", f"unknown setting; this program reads {', '.join(known)}", key=key)
        for key in sorted(keys)
        if key.startswith(f"{CONFIG_NAMESPACE}:") and key not in known
    ]


def validate_stack(
    stack: str,
    setting: Callable[[str], str | None],
    is_secret: Callable[[str], bool],
    keys: Iterable[str] = (),
) -> PlatformConfig:
    """Validate a stack's settings as the engine hands them over (``setting(full_key)`` in engine
    string form, ``is_secret(full_key)``, every key set in ``keys``): the platform config, the
    secret settings and unknown settings, every problem in one ``ConfigError``."""
    source = stack_file(stack)
    problems = unknown_setting_problems(keys)
    problems += secret_setting_problems(stack.rsplit("/", 1)[-1], setting, is_secret)
    try:
        cfg = parse_platform_config(decode_setting(setting(FULL_KEY)), source, stack=stack)
    except ConfigError as err:
        raise ConfigError(source, [*problems, *err.problems]) from None
    if problems:
        raise ConfigError(source, problems)
    return cfg


def parse_platform_config(raw: Any, source: str, *, stack: str | None = None) -> PlatformConfig:
    """Validate the raw ``vinylhound:platform`` value of ``stack`` (when given, its name is checked
    against ``environment``); raise ``ConfigError`` listing every problem."""
    if raw is None:
        raise ConfigError(source, [Problem("", "missing; every stack must set this key")])
    if not isinstance(raw, Mapping):
        what = "a list" if isinstance(raw, list) else f"the {type(raw).__name__} {raw!r}"
        message = f"must be a mapping of settings (environment, domain, services, ...), not {what}"
        raise ConfigError(source, [Problem("", message)])
    try:
        cfg = PlatformConfig.model_validate(raw, by_alias=True, by_name=False)
    except ValidationError as err:
        raise ConfigError(source, _pydantic_problems(err)) from None
    problems = [*stack_rules(cfg, stack), *_rules(cfg), *target_rules(cfg)]
    if problems:
        raise ConfigError(source, problems)
    return cfg


__all__ = [
    "BACKUP_REQUIRED",
    "CONFIG_KEY",
    "CONFIG_NAMESPACE",
    "DEFAULT_SAMPLING_PERCENT",
    "DOCKER_KEYS",
    "DOCKER_WORKLOAD_KEYS",
    "ENVIRONMENT_STACKS",
    "FULL_KEY",
    "MIN_DB_INSTANCES",
    "MIN_REPLICAS",
    "REGISTRY_REPLICAS",
    "SECRET_SETTINGS",
    "AlertThresholds",
    "Autoscaling",
    "BackupTarget",
    "ByteSize",
    "ChartVersion",
    "ChartVersions",
    "CircuitBreaker",
    "ConfigError",
    "CpuQuantity",
    "Cutover",
    "DatabaseStorage",
    "DatabasesConfig",
    "DnsLabel",
    "DockerSettings",
    "Duration",
    "EdgeConfig",
    "Environment",
    "EventsConfig",
    "ExternalDatabase",
    "Hostname",
    "ImageDigest",
    "ImageRef",
    "ImageTag",
    "MemoryQuantity",
    "Metrics",
    "MigrationPhase",
    "Model",
    "ObservabilityConfig",
    "Origin",
    "Percent",
    "PinnedImage",
    "PlatformConfig",
    "PlatformImages",
    "Problem",
    "PromDuration",
    "Registry",
    "RegistryConfig",
    "ResourceAmounts",
    "Resources",
    "RestoreFrom",
    "RoutePolicy",
    "StorageSize",
    "Target",
    "TraceBackend",
    "TraceStorage",
    "Tracing",
    "TrafficConfig",
    "Url",
    "WorkloadConfig",
    "cpu_millicores",
    "cutover_rules",
    "database_rules",
    "decode_setting",
    "duration_seconds",
    "event_rules",
    "observability_rules",
    "parse_platform_config",
    "quantity_bytes",
    "resource_rules",
    "secret_setting_problems",
    "shorten",
    "stack_file",
    "stack_rules",
    "target_rules",
    "traffic_rules",
    "unknown_setting_problems",
    "validate_stack",
]
