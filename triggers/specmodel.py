"""The base of every model read from YAML: strict about unknown fields.

A leaf, because the metric catalog's query models are part of the YAML too
(a metric trigger's ``query:``) and sit below the spec.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SpecModel(BaseModel):
    """A part of the YAML spec.

    ``extra="forbid"`` turns a misspelt field into an error with its line;
    Prefect's own models ignore unknown fields, which hides typos such as
    ``expects:`` until the automation silently never fires.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)
