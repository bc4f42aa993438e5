"""Pinned artefacts: every image by release tag (and digest where required), every chart by version."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Severity

from ._support import (
    DOCKER_CONTAINER,
    DOCKER_REMOTE_IMAGE,
    Rule,
    boolean,
    container_name,
    containers,
    is_release,
    pod_spec,
    text,
    walk,
)

_images = Rule(
    name="pinned-images",
    description="Every image is pinned: a release tag (never 'latest', never missing) and, where the "
    "environment requires it, a digest, so a deployment is reproducible and rollback is exact.",
    remediation="set services.<name>.image.tag to a release (and image.digest to its sha256 where "
    "required) in the stack config",
    severity=Severity.HIGH,
    knobs={"requireDigest": boolean(False, "Whether every image must also carry @sha256:<digest>.")},
)

_IMAGE_ID = re.compile(r"^sha256:[a-f0-9]{64}$")


def image_problem(image: str, require_digest: bool) -> str | None:
    """What is wrong with one image reference, or ``None``."""
    if _IMAGE_ID.match(image):
        return None  # an image ID is as pinned as it gets
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2] if ":" in last else ""
    if not tag and not digest:
        return f"image {image} has no tag (means latest)"
    if tag.lower() == "latest":
        return f"image {image} uses the tag latest"
    if require_digest and not digest:
        return f"image {image} has no digest"
    return None


def _image_problems(token: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    require_digest = bool(config["requireDigest"])
    if token in (DOCKER_CONTAINER, DOCKER_REMOTE_IMAGE):
        image = text(props.get("image" if token == DOCKER_CONTAINER else "name"))
        if image and (problem := image_problem(image, require_digest)):
            yield problem
        return
    if is_release(token):
        # Charts pin their own images by default; an override in values must not unpin them.
        for path, node in walk(props.get("values")):
            tag = node.get("tag")
            if "repository" in node and isinstance(tag, str) and tag.lower() == "latest":
                yield f"values.{path}.tag is latest"
        return
    spec = pod_spec(token, props)
    if spec is None:
        return
    for c in containers(spec):
        image = text(c.get("image"))
        if not image:
            yield f"container {container_name(c)}: no image"
        elif problem := image_problem(image, require_digest):
            yield f"container {container_name(c)}: {problem}"


_charts = Rule(
    name="pinned-charts",
    description="Every Helm release pins an exact chart version from its official repository.",
    remediation="set the chart's version in the stack config (platform.charts) to an exact x.y.z",
    severity=Severity.MEDIUM,
)

_EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")


def _chart_problems(token: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    if not is_release(token):
        return
    version = text(props.get("version"))
    if not _EXACT_VERSION.match(version):
        yield f"chart {text(props.get('chart')) or '?'} version {version or 'unset'} is not an exact version"


POLICIES = [_images.resource(_image_problems), _charts.resource(_chart_problems)]
