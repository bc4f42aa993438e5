"""The one way a resource says what it belongs to and what it waits for.

Every registration in this program passes ``child_opts(parent, after=...)``: ``parent`` is the
component it belongs to, ``after`` the resources it must wait for. A component is told what to
wait for the same way any resource is, through ``opts.depends_on``, and hands that on to its
children with ``waits(opts)``: Pulumi does not pass a component's ``depends_on`` to its children,
so without it a child could be created before what its component was told to wait for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi

#: The alias of a resource registered at the stack root before it moved into a component: its
#: old URN, so ``pulumi up`` on an existing stack moves it instead of replacing it.
#: (``parent=None`` is the alias spec's "had no parent"; the engine then omits the parent type.)
FROM_STACK_ROOT = pulumi.Alias(parent=None)


def waits(opts: pulumi.ResourceOptions | None) -> list[pulumi.Resource]:
    """The resources ``opts.depends_on`` names (a resource or a list of them); inputs are ignored."""
    depends_on = opts.depends_on if opts is not None else None
    if isinstance(depends_on, pulumi.Resource):
        return [depends_on]
    if isinstance(depends_on, list | tuple):
        return [r for r in depends_on if isinstance(r, pulumi.Resource)]
    return []


def child_opts(
    parent: pulumi.Resource,
    after: Sequence[pulumi.Resource] = (),
    *,
    moved_from_root: bool = False,
    renamed_from: str | None = None,
    **options: Any,
) -> pulumi.ResourceOptions:
    """Options of a child of ``parent`` that waits for ``after``.

    ``moved_from_root``: the resource was registered at the stack root before; it keeps that
    identity through an alias. ``renamed_from``: its Pulumi name before it was named after its
    component (``f"{name}-{role}"``); it keeps the identity it had under that name, under
    ``parent`` and, with ``moved_from_root``, at the stack root. ``options`` are any other
    ``ResourceOptions`` fields.
    """
    aliases: list[pulumi.Alias] = []
    if renamed_from is not None:
        aliases.append(pulumi.Alias(name=renamed_from))
    if moved_from_root:
        aliases.append(pulumi.Alias(name=renamed_from, parent=None) if renamed_from else FROM_STACK_ROOT)
    return pulumi.ResourceOptions(
        parent=parent,
        depends_on=list(after) or None,
        aliases=aliases or None,
        **options,
    )
