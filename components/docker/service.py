"""The ``ContainerService`` component: one container with its image and named volumes."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from components.docker import specs
from components.docker.specs import ContainerSpec

TYPE = "vinylhound:docker:ContainerService"


class ContainerService(pulumi.ComponentResource):
    """The image (pulled by its pinned reference, or built from ``build_context``), one named
    volume per mount, and the container.

    Defaults that matter (all in ``specs.container_inputs``): ports published on 127.0.0.1 only,
    restart ``unless-stopped``, ``no-new-privileges``, secret variables as secret Outputs, and
    ``pulumi up`` waits for the healthcheck so dependants start after a healthy container.
    Pulumi names are ``f"{name}-<role>"``; Docker names are the spec's (stable hostnames).
    """

    container: docker.Container
    hostname: pulumi.Output[str]

    def __init__(self, name: str, args: ContainerSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        image_id = self._image(name, args, child)
        volumes = [
            docker.Volume(
                f"{name}-volume-{mount.volume}",
                name=specs.volume_name(args, mount),
                labels=[docker.VolumeLabelArgs(label=k, value=v) for k, v in sorted(args.labels.items())],
                opts=child,
            )
            for mount in args.volumes
        ]
        self.container = docker.Container(
            f"{name}-container",
            **specs.container_inputs(args, image_id),
            # The component's own dependencies (a database that must be healthy first) are the
            # container's: children do not inherit them.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*volumes, *_dependencies(opts)]),
        )
        self.hostname = pulumi.Output.from_input(args.name)
        self.register_outputs({"hostname": self.hostname})

    @staticmethod
    def _image(name: str, args: ContainerSpec, child: pulumi.ResourceOptions) -> pulumi.Output[str]:
        if args.build_context is not None:
            # A local build: never pushed; repoDigest is the local image id, so a rebuild with new
            # content replaces the container.
            built = docker.Image(
                f"{name}-image",
                image_name=args.image,
                build=docker.DockerBuildArgs(context=args.build_context),
                skip_push=True,
                opts=child,
            )
            return built.repo_digest
        # The container references the pulled image by id, not by name: naming it by tag makes
        # the provider replace the container on every update (terraform-provider-docker #426).
        pulled = docker.RemoteImage(f"{name}-image", name=args.image, keep_locally=True, opts=child)
        return pulled.image_id


def _dependencies(opts: pulumi.ResourceOptions | None) -> list[pulumi.Resource]:
    depends = opts.depends_on if opts is not None else None
    if depends is None:
        return []
    if isinstance(depends, pulumi.Resource):
        return [depends]
    if isinstance(depends, list):
        return [d for d in depends if isinstance(d, pulumi.Resource)]
    raise TypeError("ContainerService takes depends_on as a resource or a list of resources")
