"""Objects found valid by earlier ``check`` runs, remembered by content so they are not validated
again.

A ``check --all`` process spends ~1.3 s of CPU building validators (the CRD models of
``ops.crds``, the Kubernetes validators of ``ops.schemas``) and validating 540 objects with them,
while a pull request changes few objects between two runs. A verdict is keyed by a digest of the
whole object and kept only while everything else it depends on is unchanged: the installed
schema sources and validation libraries and the code of ``ops/schemas.py``, ``ops/crds.py`` and
``ops/validation.py`` (:func:`fingerprint`). Only ``ok`` verdicts are kept: an invalid object is
validated and reported afresh on every run. Secrets are never keyed (a digest of a secret's data
is not written to disk) and are always validated.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from ops import crds, schemas, validation
from ops.schemas import SchemaResult, object_name
from ops.validation import InProcess, Pending, Validator

#: What a verdict depends on besides the object and the code below: the schemas' sources and the
#: libraries validating against them.
DISTRIBUTIONS = (
    "cloudcoil",
    "cloudcoil-models-istio",
    "cloudcoil-models-prometheus-operator",
    "pydantic",
    "pydantic-core",
    "kubernetes-validate",
    "jsonschema",
    "referencing",
)

#: Verdicts kept at most (a few MB of digests); beyond it only the last run's are kept.
LIMIT = 50_000


def fingerprint() -> str:
    """The installed versions of :data:`DISTRIBUTIONS` and the validating modules' code."""
    parts = [f"{d}=={metadata.version(d)}" for d in DISTRIBUTIONS]
    for module in (crds, schemas, validation):
        parts.append(hashlib.sha256(Path(str(module.__file__)).read_bytes()).hexdigest())
    return "\n".join(parts)


def object_key(obj: dict[str, Any]) -> str | None:
    """A digest of the whole object; ``None`` for a Secret or an object that is not plain JSON."""
    if obj.get("kind") == "Secret":
        return None
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


class ResultCache:
    """The digests of objects found valid, read from and written to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fingerprint = fingerprint()
        self.valid: set[str] = set()
        self.seen: set[str] = set()
        self.dirty = False
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if isinstance(saved, dict) and saved.get("fingerprint") == self.fingerprint:
            keys = saved.get("valid")
            if isinstance(keys, list):
                self.valid = {k for k in keys if isinstance(k, str)}

    def validate(
        self,
        objects: Sequence[dict[str, Any]],
        check: Callable[[list[dict[str, Any]]], list[SchemaResult]],
    ) -> list[SchemaResult]:
        """``check(objects)``, called only with the objects not already known valid."""
        return self.submit(objects, InProcess(check))()

    def submit(self, objects: Sequence[dict[str, Any]], validator: Validator) -> Pending:
        """Send ``validator`` the objects not already known valid; the returned call gives the
        results of all of ``objects``, in order, and remembers those found valid."""
        keys = [object_key(obj) for obj in objects]
        self.seen.update(k for k in keys if k is not None)
        todo = [i for i, key in enumerate(keys) if key is None or key not in self.valid]
        pending = validator.submit([objects[i] for i in todo])

        def results() -> list[SchemaResult]:
            checked = dict(zip(todo, pending(), strict=True))
            merged = []
            for i, (obj, key) in enumerate(zip(objects, keys, strict=True)):
                result = checked.get(i)
                if result is None:
                    result = SchemaResult(str(obj.get("kind")), object_name(obj), "ok")
                elif key is not None and result.status == "ok":
                    self.valid.add(key)
                    self.dirty = True
                merged.append(result)
            return merged

        return results

    def save(self) -> None:
        """Write the file (atomically: a concurrent ``check`` reads the old or the new one)."""
        if not self.dirty:
            return
        if len(self.valid) > LIMIT:
            # Objects edited away accumulate; keep what this run saw.
            self.valid &= self.seen
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"fingerprint": self.fingerprint, "valid": sorted(self.valid)})
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(fd, "w") as out:
            out.write(body)
        os.replace(tmp, self.path)
        self.dirty = False
