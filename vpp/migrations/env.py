"""Alembic environment: runs on the engine handed over by :func:`vpp.db.upgrade`."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import vpp.models  # noqa: F401  (registers the tables on SQLModel.metadata)
import vpp.performance_models  # noqa: F401  (the performance_remedy table)

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    engine = config.attributes["engine"]
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            transaction_per_migration=False,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
