"""Run a Pulumi policy pack the way the Pulumi CLI does, without the CLI.

The CLI starts a Python pack as ``pulumi-analyzer-policy-python <engine> .`` in the pack's directory,
which runs ``python -u -m pulumi.policy <engine> .``; the pack prints the port of its analyzer gRPC
server on stdout. The CLI then calls ``Handshake`` (optional), ``GetAnalyzerInfo``, ``Configure``
with the fully resolved policy config, ``Analyze`` for every resource and ``AnalyzeStack`` once.
This module does exactly that against the same generated stubs (``pulumi.runtime.proto``).

Resolving the policy config is the CLI's job, so it is done here the same way: each policy's
level is its entry in the config file, else ``all``, else the pack's default; its properties are
the config file's values over the defaults of its config schema, validated against that schema.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import grpc
import jsonschema
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

#: What the engine address argument says: the pack never calls the engine unless it logs, and
#: Python packs do not.
NO_ENGINE = "127.0.0.1:0"
LEVELS = {"advisory": 0, "mandatory": 1, "disabled": 2, "remediate": 3}
LEVEL_NAMES = {v: k for k, v in LEVELS.items()}
_START_TIMEOUT = 60.0


class AnalyzerError(Exception):
    """The pack could not be started, configured or called; the message is printable."""


@dataclass(frozen=True)
class Resource:
    """One resource as the engine hands it to an analyzer (plain JSON properties)."""

    urn: str
    type: str
    name: str
    properties: Mapping[str, Any]
    parent: str = ""
    dependencies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Diagnostic:
    """One violation the pack reported."""

    policy: str
    level: str
    message: str
    urn: str
    severity: str = ""

    @property
    def detail(self) -> str:
        """The message without the policy's description the pack prefixes it with."""
        return self.message.split("\n", 1)[-1]

    @property
    def mandatory(self) -> bool:
        """Whether this blocks a deployment."""
        return self.level in ("mandatory", "remediate")


@dataclass(frozen=True)
class PolicyInfo:
    """What the pack says about one of its policies."""

    name: str
    description: str
    level: str
    kind: str
    schema: Mapping[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    remediation: str = ""


@dataclass(frozen=True)
class ResolvedPolicy:
    """A policy's effective enforcement level and config properties."""

    level: str
    properties: Mapping[str, Any]


class PolicyConfigError(AnalyzerError):
    """The policy config file does not fit the pack (unknown policy, bad level, invalid knob)."""


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(dict(value))
    return result


def resolve_config(
    policies: Iterable[PolicyInfo], config: Mapping[str, Any], source: str = "policy config"
) -> dict[str, ResolvedPolicy]:
    """Resolve a policy-config document (the ``--policy-pack-config`` JSON) against the pack."""
    known = {p.name: p for p in policies}
    problems = []
    all_level = config.get("all")
    if all_level is not None and all_level not in LEVELS:
        problems.append(f"all: unknown enforcement level {all_level!r}")
    for name in config:
        if name != "all" and name not in known:
            problems.append(f"{name}: no such policy in the pack")
    resolved = {}
    for name, policy in known.items():
        entry = config.get(name)
        level = all_level if all_level in LEVELS else policy.level
        properties: dict[str, Any] = {}
        if isinstance(entry, str):
            level = entry
        elif isinstance(entry, Mapping):
            level = entry.get("enforcementLevel", level)
            properties = {k: v for k, v in entry.items() if k != "enforcementLevel"}
        elif entry is not None:
            problems.append(f"{name}: must be an enforcement level or an object")
        if level not in LEVELS:
            problems.append(f"{name}: unknown enforcement level {level!r}")
            continue
        defaults = {
            k: v["default"] for k, v in policy.schema.items() if isinstance(v, Mapping) and "default" in v
        }
        merged = defaults | properties
        schema = {
            "type": "object",
            "properties": dict(policy.schema),
            "required": list(policy.required),
            "additionalProperties": False,
        }
        for error in jsonschema.Draft7Validator(schema).iter_errors(merged):
            where = ".".join(str(p) for p in error.absolute_path)
            problems.append(f"{name}{'.' + where if where else ''}: {error.message}")
        resolved[name] = ResolvedPolicy(level=str(level), properties=merged)
    if problems:
        raise PolicyConfigError("\n".join(f"{source}: {p}" for p in problems))
    return resolved


def load_config(path: Path) -> dict[str, Any]:
    """A policy-config JSON file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise PolicyConfigError(f"{path}: {err}") from None
    if not isinstance(data, dict):
        raise PolicyConfigError(f"{path}: must be a JSON object")
    return data


def policies_of(info: Any) -> list[PolicyInfo]:
    """The policies an ``AnalyzerInfo`` (``GetAnalyzerInfo``'s answer) describes."""
    return [
        PolicyInfo(
            name=p.name,
            description=p.description,
            level=LEVEL_NAMES.get(p.enforcementLevel, "advisory"),
            kind="stack" if p.policy_type == analyzer_pb2.POLICY_TYPE_STACK else "resource",
            schema=json_format.MessageToDict(p.configSchema.properties),
            required=tuple(p.configSchema.required),
            remediation=p.remediation_steps,
        )
        for p in info.policies
    ]


def configure_request(resolved: Mapping[str, ResolvedPolicy]) -> Any:
    """``Configure``'s request: every policy's resolved level and properties."""
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for name, policy in resolved.items():
        request.policyConfig[name].CopyFrom(
            analyzer_pb2.PolicyConfig(
                enforcementLevel=analyzer_pb2.EnforcementLevel.ValueType(LEVELS[policy.level]),
                properties=_struct(policy.properties),
            )
        )
    return request


def analyze_request(resource: Resource, properties: struct_pb2.Struct | None = None) -> Any:
    """``Analyze``'s request for one resource, as the engine sends it (``properties``: its
    properties already converted, see ``PolicyPackProcess.run``)."""
    return analyzer_pb2.AnalyzeRequest(
        type=resource.type,
        properties=_struct(resource.properties) if properties is None else properties,
        urn=resource.urn,
        name=resource.name,
        options=analyzer_pb2.AnalyzerResourceOptions(parent=resource.parent),
    )


def analyze_stack_request(
    resources: Iterable[Resource], properties: Mapping[str, struct_pb2.Struct] | None = None
) -> Any:
    """``AnalyzeStack``'s request over every resource, as the engine sends it (``properties``:
    their properties already converted, by URN)."""
    return analyzer_pb2.AnalyzeStackRequest(
        resources=[
            analyzer_pb2.AnalyzerResource(
                type=r.type,
                properties=_struct(r.properties) if properties is None else properties[r.urn],
                urn=r.urn,
                name=r.name,
                options=analyzer_pb2.AnalyzerResourceOptions(parent=r.parent),
                parent=r.parent,
                dependencies=list(r.dependencies),
            )
            for r in resources
        ]
    )


#: ``Analyze`` calls a check keeps in flight. One at a time, each of the ~700 calls for the four
#: stacks cost the pack ~0.8 ms of CPU and the client ~0.5 ms in gRPC's handoffs alone (measured
#: with an empty call); a window of calls is answered for about a third of that.
IN_FLIGHT = 16


class PolicyPackProcess:
    """A running policy pack and a client of its analyzer service. Use as a context manager."""

    def __init__(self, pack_dir: Path, python: str = sys.executable) -> None:
        self.pack_dir = pack_dir.resolve()
        self.python = python
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._channel: grpc.Channel | None = None
        self._stub: analyzer_pb2_grpc.AnalyzerStub | None = None
        self.policies: list[PolicyInfo] = []
        self.name = ""

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> PolicyPackProcess:
        """Start the pack, read its port, connect, handshake and read its policies."""
        self.spawn()
        return self.connect()

    def spawn(self) -> None:
        """Start the pack's process and return at once (its interpreter and imports take ~0.3 s,
        which a caller can spend on other work before ``connect``). Does nothing if it runs."""
        if self._process is not None:
            return
        if not (self.pack_dir / "PulumiPolicy.yaml").is_file():
            raise AnalyzerError(f"{self.pack_dir}: no PulumiPolicy.yaml; not a policy pack")
        # Outlives this method (the pack writes to it until closed); closed in close().
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._process = subprocess.Popen(
            [self.python, "-u", "-m", "pulumi.policy", NO_ENGINE, "."],
            cwd=self.pack_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )

    def connect(self) -> PolicyPackProcess:
        """Wait for the spawned pack's port, connect, handshake and read its policies. Does
        nothing if connected."""
        if self._stub is not None:
            return self
        if self._process is None:
            raise AnalyzerError("the policy pack is not running")
        port = self._read_port()
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self._stub = analyzer_pb2_grpc.AnalyzerStub(self._channel)
        self._handshake()
        self._read_info()
        return self

    def _read_port(self) -> int:
        assert self._process is not None and self._process.stdout is not None
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(self._process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(_START_TIMEOUT)
        text = line[0].decode().strip() if line else ""
        if not text.isdigit():
            # What the pack wrote to stderr is read once it has ended, before its file is closed.
            self._stop()
            problem = self._stderr_text() or text or "no port printed"
            self.close()
            raise AnalyzerError(f"policy pack {self.pack_dir} did not start: {problem}")
        return int(text)

    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()[-2000:]

    def _handshake(self) -> None:
        request = analyzer_pb2.AnalyzerHandshakeRequest(
            engine_address=NO_ENGINE, root_directory=str(self.pack_dir), program_directory=str(self.pack_dir)
        )
        try:
            self.stub.Handshake(request, wait_for_ready=True, timeout=_START_TIMEOUT)
        except grpc.RpcError as err:
            # Optional in the protocol: the CLI falls back to the older behaviour too.
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise AnalyzerError(f"handshake with the policy pack failed: {err.details()}") from None

    def close(self) -> None:
        """Close the connection and end the pack's process."""
        self._stop()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _stop(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None

    def __enter__(self) -> PolicyPackProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The pack's process id while it runs (to account for its CPU time)."""
        return self._process.pid if self._process is not None else None

    @property
    def stub(self) -> analyzer_pb2_grpc.AnalyzerStub:
        """The analyzer client (after ``start``)."""
        if self._stub is None:
            raise AnalyzerError("the policy pack is not running")
        return self._stub

    # -- the protocol ---------------------------------------------------------------------------

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self.stub, method)(request)
        except grpc.RpcError as err:
            raise self._failed(method, err) from None

    def _failed(self, method: str, err: grpc.RpcError) -> AnalyzerError:
        details = err.details() if isinstance(err, grpc.Call) else str(err)
        return AnalyzerError(f"policy pack {method} failed: {details}\n{self._stderr_text()}")

    def _read_info(self) -> None:
        from google.protobuf import empty_pb2

        info = self._call("GetAnalyzerInfo", empty_pb2.Empty())
        self.name = info.name
        self.policies = policies_of(info)

    def configure(self, resolved: Mapping[str, ResolvedPolicy]) -> None:
        """Send the fully resolved policy config (every policy: level and properties)."""
        self._call("Configure", configure_request(resolved))

    def configure_stack(self, project: str, stack: str) -> None:
        """Tell the pack which stack it analyses (optional in the protocol)."""
        request = analyzer_pb2.AnalyzerStackConfigureRequest(
            project=project, stack=stack, organization="organization"
        )
        with contextlib.suppress(AnalyzerError):
            self._call("ConfigureStack", request)

    def _diagnostics(self, response: Any, default_urn: str) -> list[Diagnostic]:
        severities = {1: "low", 2: "medium", 3: "high", 4: "critical"}
        return [
            Diagnostic(
                policy=d.policyName,
                level=LEVEL_NAMES.get(d.enforcementLevel, "advisory"),
                message=d.message,
                urn=d.urn or default_urn,
                severity=severities.get(d.severity, ""),
            )
            for d in response.diagnostics
        ]

    def analyze(self, resource: Resource, properties: struct_pb2.Struct | None = None) -> list[Diagnostic]:
        """``Analyze`` one resource."""
        request = analyze_request(resource, properties)
        return self._diagnostics(self._call("Analyze", request), resource.urn)

    def analyze_stack(
        self, resources: Iterable[Resource], properties: Mapping[str, struct_pb2.Struct] | None = None
    ) -> list[Diagnostic]:
        """``AnalyzeStack`` once over every resource."""
        request = analyze_stack_request(resources, properties)
        return self._diagnostics(self._call("AnalyzeStack", request), "")

    def run(self, resources: list[Resource], resolved: Mapping[str, ResolvedPolicy]) -> list[Diagnostic]:
        """Configure, analyze each resource, then the stack; what a preview with the pack does.
        The diagnostics come in the order of ``resources``, then the stack's."""
        self.configure(resolved)
        # Each resource's properties are converted once for both calls: the conversion (protobuf's
        # Struct.update, in Python) was most of the cost of building the requests.
        properties = {r.urn: _struct(r.properties) for r in resources}
        return self._analyze_each(resources, properties) + self.analyze_stack(resources, properties)

    def _analyze_each(
        self, resources: list[Resource], properties: Mapping[str, struct_pb2.Struct]
    ) -> list[Diagnostic]:
        """``Analyze`` every resource, up to ``IN_FLIGHT`` calls at a time, as the engine sends
        them while resources register; answers are read in the order of ``resources``."""
        found: list[Diagnostic] = []
        pending: deque[tuple[Resource, Any]] = deque()
        try:
            for resource in resources:
                request = analyze_request(resource, properties[resource.urn])
                pending.append((resource, self.stub.Analyze.future(request)))
                if len(pending) >= IN_FLIGHT:
                    found += self._answer(*pending.popleft())
            while pending:
                found += self._answer(*pending.popleft())
        finally:
            for _, call in pending:  # what is left after a failed call
                call.cancel()
        return found

    def _answer(self, resource: Resource, call: Any) -> list[Diagnostic]:
        try:
            return self._diagnostics(call.result(), resource.urn)
        except grpc.RpcError as err:
            raise self._failed("Analyze", err) from None


@contextlib.contextmanager
def running_pack(pack_dir: Path) -> Iterator[PolicyPackProcess]:
    """A started pack, closed on exit."""
    pack = PolicyPackProcess(pack_dir)
    try:
        yield pack.start()
    finally:
        pack.close()
