"""The base of every spec model: strict about unknown fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SpecModel(BaseModel):
    """A part of the YAML spec.

    ``extra="forbid"`` turns a misspelt field into an error with its line;
    Prefect's own models ignore unknown fields, which hides typos such as
    ``expects:`` until the automation silently never fires.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)
