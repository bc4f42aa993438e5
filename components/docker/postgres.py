"""The ``PostgresDatabase`` component: one PostgreSQL container with a generated password."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_random as random

from components.docker.service import ContainerService
from components.docker.specs import ContainerSpec, Healthcheck, PublishedPort, VolumeMount

TYPE = "vinylhound:docker:PostgresDatabase"
PORT = 5432
DATA_PATH = "/var/lib/postgresql/data"
#: The image's entrypoint runs these files once, when the data directory is empty (first start).
INIT_DIR = "/docker-entrypoint-initdb.d"


@dataclass(frozen=True)
class PostgresArgs:
    """One database server for one owner. ``name`` is the container's hostname."""

    name: str
    image: str
    network: pulumi.Input[str]
    name_prefix: str = ""
    database: str = "postgres"
    user: str = "postgres"
    #: SQL run once at first start (extensions, schema). Empty: an empty database.
    init_sql: str = ""
    #: Host port on 127.0.0.1 for local tools (psql); default: not published.
    published_port: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def server_spec(args: PostgresArgs, password: pulumi.Input[str]) -> ContainerSpec:
    """The container of one database server (pure; tested without Pulumi)."""
    return ContainerSpec(
        name=args.name,
        image=args.image,
        name_prefix=args.name_prefix,
        network=args.network,
        # PGDATA explicit: the images moved their default data directory in PostgreSQL 18, and the
        # named volume must stay where the data is whichever pinned major version runs.
        env={"POSTGRES_DB": args.database, "POSTGRES_USER": args.user, "PGDATA": DATA_PATH},
        secret_env={"POSTGRES_PASSWORD": password},
        ports=[PublishedPort(PORT, args.published_port)] if args.published_port is not None else [],
        # Over TCP on purpose: during first-start initialisation the image runs a temporary server
        # on the unix socket only, which a socket check would wrongly report as ready.
        healthcheck=Healthcheck(
            ("pg_isready", "-h", "127.0.0.1", "-p", str(PORT), "-U", args.user, "-d", args.database),
            interval="5s",
            start_period="30s",
        ),
        volumes=[VolumeMount(f"{args.name}-data", DATA_PATH)],
        files={f"{INIT_DIR}/10-init.sql": args.init_sql} if args.init_sql else {},
        labels=args.labels,
    )


class PostgresDatabase(pulumi.ComponentResource):
    """A PostgreSQL server whose password is generated (pulumi-random) and secret end to end.

    Outputs: ``host`` and ``port`` on the network, the ``password`` and a libpq ``url``
    (both secret). TLS is off (``sslmode=disable``): traffic never leaves the local Docker network.
    """

    server: ContainerService
    host: pulumi.Output[str]
    port: int
    password: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        generated = random.RandomPassword(
            f"{name}-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        self.password = pulumi.Output.secret(generated.result)
        self.server = ContainerService(
            f"{name}-server", server_spec(args, self.password), opts=pulumi.ResourceOptions(parent=self)
        )
        self.host = pulumi.Output.from_input(args.name)
        self.port = PORT
        self.url = pulumi.Output.secret(
            pulumi.Output.format(
                "postgres://{0}:{1}@{2}:{3}/{4}?sslmode=disable",
                args.user,
                self.password,
                args.name,
                PORT,
                args.database,
            )
        )
        self.register_outputs(
            {"host": self.host, "port": self.port, "password": self.password, "url": self.url}
        )
