"""Alembic environment: uses the engine handed over by ``broker.storage.migrate``."""

from __future__ import annotations

from alembic import context

from broker.storage.models import Base

engine = context.config.attributes.get("engine")
if engine is None:
    raise RuntimeError("run migrations through 'supercloud db upgrade'")

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
