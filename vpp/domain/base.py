"""The two kinds of model in the domain layer and the API (pydantic).

Inputs (:class:`InModel`) forbid unknown fields, so a mistyped field is an error, not a silent
default; views (:class:`OutModel`) are read from ORM rows or dataclasses by attribute.
Units are in the field names (``_kw``, ``_kwh``, ``_yuan``, ``_fen``); timestamps are
timezone-aware.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class InModel(BaseModel):
    """A request: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class OutModel(BaseModel):
    """A view: built from attributes (ORM rows, dataclasses)."""

    model_config = ConfigDict(from_attributes=True)
