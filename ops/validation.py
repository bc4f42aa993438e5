"""Schema validation of rendered objects, in this process or in a process of its own.

:func:`validate` judges core objects against the Kubernetes schemas (``ops.schemas``) and custom
resources against their CRD schemas (``ops.crds``). ``check`` hands it objects through a
:class:`Validator`: :class:`InProcess` validates at once; :class:`ValidationProcess` sends them to
``python -m ops.validation`` and collects every verdict once the last stack is analysed.

Why a process: on a first run (no verdicts kept, see ``ops.verdicts``) every object is validated and
every validator built (~1.3 s of CPU for the four stacks, most of it creating CRD model classes),
all of it on the path a user waits on. In a process of its own, the imports and the first builds
run on the second core while the first stack renders, and each stack's objects are validated
while the next one renders. The verdicts are the same: the child runs :func:`validate`.

The protocol is private to the two: the parent writes each batch as an 8-byte length and a pickle
to the child's stdin (from a thread, so a child busy validating never blocks a render), then closes
it; the child answers with one pickle of every batch's results on stdout and exits 0. Both ends are
this module, in this installation; nothing else reads or writes these pipes.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from ops.crds import validate_custom
from ops.schemas import SchemaResult, validate_objects

#: The results of a batch handed to a validator, once they are needed.
Pending = Callable[[], list[SchemaResult]]

#: Where ``python -m ops.validation`` is importable from.
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]
_LENGTH = 8


def validate(objects: list[dict[str, Any]]) -> list[SchemaResult]:
    """Core objects against the Kubernetes schemas, custom resources against their CRDs."""
    results = validate_objects(objects)
    return [
        validate_custom(obj) if r.status == "unchecked" else r
        for obj, r in zip(objects, results, strict=True)
    ]


class Validator(Protocol):
    """Where ``check`` sends each stack's objects."""

    def submit(self, objects: list[dict[str, Any]]) -> Pending:
        """Start validating ``objects``; the returned call gives their results, in order."""
        ...


class InProcess:
    """Validation here and now (``check`` with verdicts kept: only what a change touched)."""

    def __init__(self, check: Callable[[list[dict[str, Any]]], list[SchemaResult]] | None = None) -> None:
        self.check = check

    def submit(self, objects: list[dict[str, Any]]) -> Pending:
        # ``validate`` is looked up at each call, so a test can record what it is given.
        results = (self.check or validate)(objects)
        return lambda: results


class ValidationError(Exception):
    """The validation process failed (it did not start, or ended without every result)."""


class ValidationProcess:
    """``python -m ops.validation`` and the batches sent to it. Use as a context manager: the
    process starts on entry, before anything is rendered, so its imports overlap the render."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._frames: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._batches = 0
        self._results: list[list[SchemaResult]] | None = None

    def start(self) -> ValidationProcess:
        """Spawn the process and return at once."""
        if self._process is not None:
            return self
        # Outlives this method (the child writes to it until it ends); closed in close().
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                [self.python, "-m", "ops.validation"],
                cwd=_PACKAGE_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
            )
        except OSError as err:
            raise ValidationError(f"schema validation process did not start: {err}") from None
        self._writer = threading.Thread(target=self._write, name="validation-writer", daemon=True)
        self._writer.start()
        return self

    def _write(self) -> None:
        assert self._process is not None and self._process.stdin is not None
        stdin = self._process.stdin
        # An OSError means the child ended early: collecting its results reports why.
        with contextlib.suppress(OSError):
            while (frame := self._frames.get()) is not None:
                stdin.write(frame)
                stdin.flush()
        with contextlib.suppress(OSError):
            stdin.close()

    def submit(self, objects: list[dict[str, Any]]) -> Pending:
        """Queue ``objects`` for the child; their results come with every other batch's."""
        if self._process is None or self._results is not None:
            raise ValidationError("the schema validation process is not accepting objects")
        body = pickle.dumps(objects, protocol=pickle.HIGHEST_PROTOCOL)
        self._frames.put(len(body).to_bytes(_LENGTH, "big") + body)
        index, self._batches = self._batches, self._batches + 1
        return lambda: self.results()[index]

    def results(self) -> list[list[SchemaResult]]:
        """Every batch's results: the child is told there are no more and waited for."""
        if self._results is not None:
            return self._results
        if self._process is None or self._writer is None:
            raise ValidationError("the schema validation process is not running")
        self._frames.put(None)
        self._writer.join()
        assert self._process.stdout is not None
        answer = self._process.stdout.read()
        code = self._process.wait()
        try:
            results = pickle.loads(answer) if code == 0 else None
        except (pickle.UnpicklingError, EOFError, ValueError):
            results = None
        if not (isinstance(results, list) and len(results) == self._batches):
            raise ValidationError(f"schema validation process failed (exit {code}): {self._problem()}")
        self._results = results
        return results

    def _problem(self) -> str:
        if self._stderr is None:
            return "no output"
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no output"

    def close(self) -> None:
        """End the process if it still runs and release its files."""
        if self._process is not None:
            if self._process.poll() is None:
                self._frames.put(None)
                self._process.kill()
                self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> ValidationProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()


def _read_frame(stream: IO[bytes]) -> list[dict[str, Any]] | None:
    head = stream.read(_LENGTH)
    if not head:
        return None
    size = int.from_bytes(head, "big")
    body = stream.read(size)
    if len(head) != _LENGTH or len(body) != size:
        raise ValidationError("truncated batch on stdin")
    batch: list[dict[str, Any]] = pickle.loads(body)
    return batch


def _warm() -> None:
    """What every first validation needs anyway, done while the parent still renders: the
    Kubernetes schemas' shared definitions and the CRD models' deferred builds."""
    from ops import crds, schemas

    schemas.definitions()
    crds.defer_builds()


def main() -> None:
    """The child: validate each batch read from stdin; at its end, write every result."""
    _warm()
    stdin, results = sys.stdin.buffer, []
    while (batch := _read_frame(stdin)) is not None:
        results.append(validate(batch))
    sys.stdout.buffer.write(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    os._exit(0)  # nothing left to clean up; skip the interpreter's teardown of the models


if __name__ == "__main__":
    main()
