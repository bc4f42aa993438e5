"""The policy pack. The Pulumi CLI runs this file (``python -m pulumi.policy <engine> .`` in this
directory); it only builds the pack. The rules live in ``rules/`` so they import without this
side effect: constructing ``PolicyPack`` starts the analyzer's gRPC server and blocks."""

from pulumi_policy import EnforcementLevel, PolicyPack
from rules import PACK_NAME, POLICIES

PolicyPack(name=PACK_NAME, policies=POLICIES, enforcement_level=EnforcementLevel.MANDATORY)
