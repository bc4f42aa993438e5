"""The policy pack. The Pulumi CLI runs this file (``python -m pulumi.policy <engine> .`` in this
directory); it only builds the pack. The rules live in ``rules/`` so they import without this
side effect: constructing ``PolicyPack`` starts the analyzer's gRPC server and blocks."""

import gc

from pulumi_policy import EnforcementLevel, PolicyPack
from rules import PACK_NAME, POLICIES
from servicer import install

# The SDK's servicer converts every resource again for every policy; this one converts it once
# per request (servicer.py), with the SDK release it was written against.
install()
# Every request still builds a proxy tree per resource; with the default collector thresholds full
# collections over that growing heap made the pack's cost per resource grow with the stack.
# mypy's thresholds, as in an offline run (ops/mockrun.py).
gc.set_threshold(200_000, 30, 30)
PolicyPack(name=PACK_NAME, policies=POLICIES, enforcement_level=EnforcementLevel.MANDATORY)
