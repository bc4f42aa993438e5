"""Run the real Pulumi program offline, under Pulumi's mock runtime, and record what it registers.

This is the engine behind ``vinylhound render``/``check``/``diff``. It does what
``@pulumi.runtime.test`` does for a test body, for a whole program: fresh mocks and a fresh root
stack per run, the stack's config fed through ``set_all_config``, and every ``RegisterResource``
request captured as it reaches the (mock) engine: type, name, parent, dependencies and inputs in
the wire form the real engine would see. Secret values never leave this module unmasked.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks, settings
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

#: Printed instead of any secret value (config secrets, generated passwords, Secret data).
MASK = "[secret]"

_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

# Stand-in outputs of providers that compute values, so dependent inputs are deterministic.
_COMPUTED_OUTPUTS: dict[str, dict[str, Any]] = {
    "random:index/randomString:RandomString": {"result": "generated"},
}

#: Generated secrets: each gets a value of its own, returned as a secret exactly as the real
#: engine returns it (``additionalSecretOutputs``). The values are unique so a test can prove that
#: none of them reaches any rendered file unmasked.
_SECRET_OUTPUTS: dict[str, tuple[str, ...]] = {
    "random:index/randomPassword:RandomPassword": ("result", "bcryptHash"),
    # Both encodings of the bytes are sensitive in the provider's schema.
    "random:index/randomBytes:RandomBytes": ("base64", "hex"),
}

#: Every generated secret value starts with this; nothing rendered may contain it.
SENTINEL_PREFIX = "vinylhound-offline-secret-"


def sentinel(name: str, output: str) -> str:
    """The stand-in value of one generated secret (unique per resource and output)."""
    return f"{SENTINEL_PREFIX}{name}-{output}"


@dataclass(frozen=True)
class Registration:
    """One resource the program registered, as the engine saw it."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    dependencies: tuple[str, ...]
    inputs: dict[str, Any]
    #: The resource's own ``aliases``, as sent (see ``alias_specs``).
    aliases: tuple[dict[str, Any], ...] = ()
    #: Resource options the engine acts on (not written to ``resources.json``).
    protect: bool = False
    retain_on_delete: bool = False
    delete_before_replace: bool = False
    replace_on_changes: tuple[str, ...] = ()
    #: ``customTimeouts`` as (create, update, delete); "" where the provider's default applies.
    custom_timeouts: tuple[str, str, str] = ("", "", "")

    def record(self) -> dict[str, Any]:
        """The ``resources.json`` entry."""
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "dependencies": list(self.dependencies),
            "aliases": list(self.aliases),
            "inputs": self.inputs,
        }


def alias_specs(request: Any) -> tuple[dict[str, Any], ...]:
    """The ``aliases`` of a RegisterResource request as the engine receives them.

    The mock monitor announces alias specs, so the SDK sends each alias as a spec (empty fields
    mean "as now": name, type, stack, project, parent; ``noParent``: it was registered at the
    stack root) or, when the program gave one, a URN. The engine resolves them into URNs itself,
    and derives a child's aliases from its parent's; so does ``tests/test_structure.py``.
    """
    found: list[dict[str, Any]] = []
    for alias in request.aliases:
        if alias.urn:
            found.append({"urn": alias.urn})
            continue
        spec = json_format.MessageToDict(alias.spec)
        found.append(dict(sorted(spec.items())))
    return tuple(found)


def plain(value: Any) -> Any:
    """Wire form -> plain JSON: secrets masked, resource references as URNs, integral floats as
    ints (the wire has only doubles), unknowns as ``None``."""
    if isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SECRET_SIG:
            return _mask(value.get("value"))
        if sig == _RESOURCE_SIG:
            return value.get("urn", "")
        # Sorted: the wire's map order is not stable, renders must be.
        return {k: plain(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value == _UNKNOWN:
        return None
    return value


def plain_struct(struct: Any) -> dict[str, Any]:
    """``plain(json_format.MessageToDict(struct))`` for a protobuf ``Struct``, in one pass.

    Going through ``MessageToDict`` built every input tree twice (the JSON form, then the plain
    one): ~170 us per resource of the dev stack, against ~90 us in one pass (about 2% of a
    render, docs/benchmarks.md). Structs carrying a signature (secrets, resource references) are
    rare and take the two-step path, so their handling stays ``plain``'s.
    """
    fields = struct.fields
    if _SIG_KEY in fields:
        result: dict[str, Any] = plain(json_format.MessageToDict(struct))
        return result
    return {k: _plain_value(fields[k]) for k in sorted(fields)}


def _plain_value(value: Any) -> Any:
    """One ``google.protobuf.Value`` as ``plain`` returns its JSON form (json_format's rules)."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        text = value.string_value
        return None if text == _UNKNOWN else text
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            # json_format refuses these too: JSON has no Infinity or NaN.
            raise ValueError(f"{number} has no JSON form")
        return int(number) if number.is_integer() else number
    if kind == "struct_value":
        return plain_struct(value.struct_value)
    if kind == "list_value":
        return [_plain_value(v) for v in value.list_value.values]
    if kind == "bool_value":
        return value.bool_value
    return None  # null_value, or no kind set (json_format: null)


def _mask(value: Any) -> Any:
    """Keep the shape (keys stay visible for review), hide every value."""
    if isinstance(value, dict):
        return {k: _mask(plain(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return MASK


# Image ids only exist once Docker has pulled or built an image; offline, the reference stands in,
# so a container's recorded `image` still names the pinned image it will run.
_IMAGE_ID_FROM_INPUT: dict[str, tuple[str, str]] = {
    "docker:index/remoteImage:RemoteImage": ("imageId", "name"),
    "docker:index/image:Image": ("repoDigest", "imageName"),
}


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        outputs = dict(args.inputs)
        outputs.update(_COMPUTED_OUTPUTS.get(args.typ, {}))
        for output in _SECRET_OUTPUTS.get(args.typ, ()):
            outputs[output] = {_SIG_KEY: _SECRET_SIG, "value": sentinel(args.name, output)}
        if args.typ in _IMAGE_ID_FROM_INPUT:
            output, source = _IMAGE_ID_FROM_INPUT[args.typ]
            outputs[output] = args.inputs.get(source)
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise NotImplementedError(
            f"offline render cannot answer provider call {args.token}; declare resources instead"
        )


def _timeouts(request: Any) -> tuple[str, str, str]:
    timeouts = request.customTimeouts
    return (timeouts.create, timeouts.update, timeouts.delete)


class _RecordingMonitor(mocks.MockMonitor):
    """The SDK's mock monitor, keeping every registration request it is sent."""

    def __init__(self) -> None:
        super().__init__(_Mocks())
        self.registrations: list[Registration] = []
        self._lock = threading.Lock()
        self._thread = threading.local()
        self._thread_loops: list[asyncio.AbstractEventLoop] = []

    def _ensure_thread_loop(self) -> None:
        """Give the calling (executor) thread its event loop, and remember it.

        The SDK's monitor needs a loop on the thread it runs on and creates one if there is none,
        but never closes it: when the executor's threads end, those loops are collected unclosed
        (``ResourceWarning: unclosed event loop``). Creating it here lets the run close it.
        """
        if threading.current_thread() is threading.main_thread():
            return  # the run's own loop, closed by ``run_offline``
        if getattr(self._thread, "loop", None) is None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._thread.loop = loop
            with self._lock:
                self._thread_loops.append(loop)

    def close_thread_loops(self) -> None:
        """Close the executor threads' loops; call once the executor has shut down."""
        with self._lock:
            loops, self._thread_loops = self._thread_loops, []
        for loop in loops:
            loop.close()

    def Invoke(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        self._ensure_thread_loop()
        return super().Invoke(request)  # type: ignore[no-untyped-call]

    def ReadResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        self._ensure_thread_loop()
        return super().ReadResource(request)  # type: ignore[no-untyped-call]

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        self._ensure_thread_loop()
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            inputs = plain_struct(request.object)
            registration = Registration(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                custom=bool(request.custom),
                dependencies=tuple(sorted(set(request.dependencies))),
                inputs=inputs,
                aliases=alias_specs(request),
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                delete_before_replace=bool(request.deleteBeforeReplace),
                replace_on_changes=tuple(request.replaceOnChanges),
                custom_timeouts=_timeouts(request),
            )
            with self._lock:
                self.registrations.append(registration)
        return response


class ProgramError(Exception):
    """The program raised; ``registrations`` is what it had registered before it did."""

    def __init__(self, cause: BaseException, registrations: list[Registration]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.registrations = registrations


@dataclass
class Run:
    """What one offline run produced."""

    stack: str
    registrations: list[Registration]
    exports: dict[str, Any] = field(default_factory=dict)


def _resolve_exports() -> dict[str, Any]:
    root = settings.get_root_resource()
    outputs: Mapping[str, Any] = getattr(root, "outputs", {}) or {}

    async def resolve() -> dict[str, Any]:
        resolved = {}
        for key, value in outputs.items():
            out = pulumi.Output.from_input(value)
            is_secret = await out.is_secret()
            result = await out.future()
            resolved[key] = _mask(result) if is_secret else plain(json.loads(json.dumps(result)))
        return resolved

    return _sync_await(resolve())


#: Collector thresholds during a run (the ones mypy uses for its own large runs). A run allocates
#: hundreds of thousands of long-lived objects (Outputs, futures, protobuf messages); with the
#: default thresholds the collector ran a full pass every time the heap grew by a quarter and
#: took ~45% of a 100-service render, a share that grows with the platform (docs/benchmarks.md).
RUN_GC_THRESHOLDS = (200_000, 30, 30)


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Collect less often during a run, then restore the process's thresholds."""
    saved = gc.get_threshold()
    gc.set_threshold(*RUN_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*saved)


#: The SDK's function that builds every registration's source position (see _no_source_positions).
_STACK_TRACE = "_get_stack_trace"


@contextlib.contextmanager
def _no_source_positions() -> Iterator[None]:
    """Register resources without their source positions during a run, then restore the SDK.

    For every resource, the Python SDK walks the interpreter's stack (``traceback.extract_stack``
    and a file URI and protobuf frame for each of ~14 frames) so the engine can say where it was
    declared; the mock engine discards them, and nothing offline reads them. It is ~5% of a
    render (0.15 of 2.7 s at +50 services). The SDK itself sends the same empty trace when the
    caller is not a resource class's constructor. Where a future SDK has no such function, runs
    compute positions as before (tests/test_mockrun.py notices)."""
    saved = getattr(sdk_resource, _STACK_TRACE, None)
    if saved is None:
        yield
        return
    setattr(sdk_resource, _STACK_TRACE, source_pb2.StackTrace)
    try:
        yield
    finally:
        setattr(sdk_resource, _STACK_TRACE, saved)


def run_offline(
    program: Callable[[], None],
    *,
    project: str,
    stack: str,
    config: Mapping[str, str],
    secret_keys: list[str],
) -> Run:
    """Run ``program`` under mocks as stack ``stack`` with ``config`` (full keys, string values).

    Each call starts from a clean runtime: a new event loop, a new root stack and new mocks, so
    runs in one process never share state.
    """
    with _no_source_positions():  # from the root stack on, which registers in set_mocks
        monitor = _fresh_runtime(project, stack, config, secret_keys)
        try:
            with _fewer_collections():
                _sync_await(run_pulumi_func(program))
                exports = _resolve_exports()
        except Exception as err:
            raise ProgramError(err, sorted(monitor.registrations, key=lambda r: r.urn)) from err
        finally:
            _shut_down(monitor)
    registrations = sorted(monitor.registrations, key=lambda r: r.urn)
    return Run(stack=stack, registrations=registrations, exports=exports)


def _fresh_runtime(
    project: str, stack: str, config: Mapping[str, str], secret_keys: list[str]
) -> _RecordingMonitor:
    asyncio.set_event_loop(asyncio.new_event_loop())
    settings.ROOT.set(None)
    monitor = _RecordingMonitor()
    pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(dict(config), secret_keys)
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    return monitor


def _shut_down(monitor: _RecordingMonitor) -> None:
    """Shut down what the run started before closing its loop: async generators, and the default
    executor the SDK sends its RPCs to (waiting for its threads), then the loops those threads
    were given."""
    loop = asyncio.get_event_loop()
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
    monitor.close_thread_loops()
