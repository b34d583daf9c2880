"""The operations schemathesis (an independent OpenAPI 3 loader) finds in our document."""

from __future__ import annotations

from schemathesis import APIOperation
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Ok
from schemathesis.schemas import BaseSchema


def loaded_operations(schema: BaseSchema) -> list[APIOperation]:
    """Every operation of ``schema``; raises the loader's :class:`InvalidSchema` for one it
    could not load."""
    ops: list[APIOperation] = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            error: InvalidSchema = result.err()
            raise error
        ops.append(result.ok())
    return ops
