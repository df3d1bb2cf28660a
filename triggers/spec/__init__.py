"""The spec: pydantic models of the automation YAML, each compiling to Prefect's own models.

Automations (with every trigger and action the OSS server accepts, plus
metric triggers), the blocks they need, template references, and the JSON
Schema editors use. Nothing here talks to a server or reads a file but a
template's.
"""

from triggers.spec.action import ActionSpec
from triggers.spec.automation import OWNER_TAG, AutomationSpec
from triggers.spec.blocks import BlockSpec
from triggers.spec.document import DocumentSpec
from triggers.spec.metric import MetricTriggerSpec
from triggers.spec.resolver import Resolver
from triggers.spec.schema import spec_schema, spec_schema_text
from triggers.spec.template import TemplateRef
from triggers.spec.trigger import TriggerSpec

__all__ = [
    "OWNER_TAG",
    "ActionSpec",
    "AutomationSpec",
    "BlockSpec",
    "DocumentSpec",
    "MetricTriggerSpec",
    "Resolver",
    "TemplateRef",
    "TriggerSpec",
    "spec_schema",
    "spec_schema_text",
]
