"""Database access: engines, sessions, migrations, and the checks around them.

SQLite (one file in the data directory) is the embedded default; PostgreSQL when
``VPP_DATABASE_URL`` names one. The schema is managed only by Alembic (:func:`upgrade`).
Connection problems and unknown (newer) schema revisions become :class:`StorageError` with one
line that says what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlmodel import Session

from vpp.errors import StorageError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: the newest migration in ``MIGRATIONS_DIR`` (tests/vpp/test_storage.py checks it against
#: Alembic's own head): every CLI command checks the schema against it without importing
#: Alembic (about 0.7 s of each command's start-up)
SCHEMA_HEAD = "0008"


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for ``postgresql://`` URLs; leave others as given."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def make_engine(url: str, *, search_path: str | None = None, **kwargs: Any) -> Engine:
    """Create an engine. SQLite gets its directory created, foreign keys on, and WAL mode.

    ``search_path`` (PostgreSQL only) confines the engine to one schema (used by the tests to give
    every test a clean schema).
    """
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(f"invalid database URL {url!r}") from None
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        connect_args["timeout"] = 30
    elif parsed.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = 5
        if search_path:
            connect_args["options"] = f"-csearch_path={search_path}"
    else:
        raise StorageError(
            f"unsupported database {parsed.get_backend_name()!r} in {redact(url)} "
            "(use sqlite:///path or postgresql://...)"
        )
    try:
        engine = create_engine(url, connect_args=connect_args, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise StorageError(f"cannot use database {redact(url)}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    return engine


def check_connection(engine: Engine) -> None:
    """Connect once; raise :class:`StorageError` with a one-line reason if we cannot."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StorageError(
            f"cannot reach database {redact(str(engine.url))}: {reason}"
        ) from None


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (``None`` for an empty database)."""
    check_connection(engine)
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def head_revision() -> str:
    """The newest revision this software knows."""
    return SCHEMA_HEAD


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Migrate the schema to ``revision``; return (from, to).

    Refuses, leaving the database untouched, when the database is at a revision this software
    does not know (a newer schema written by a newer version).
    """
    from alembic import command
    from alembic.script import ScriptDirectory

    before = current_revision(engine)
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    if before is not None:
        try:
            script.get_revision(before)
        except Exception:
            raise StorageError(
                f"database schema is at revision {before!r}, which this version does not know "
                f"(newest known: {head_revision()!r}); upgrade the software, not the database"
            ) from None
    try:
        command.upgrade(_alembic_config(engine), revision)
    except SQLAlchemyError as exc:
        raise StorageError(f"migration failed: {str(exc).splitlines()[0]}") from None
    return before, current_revision(engine) or ""


def require_current_schema(engine: Engine) -> None:
    """Raise :class:`StorageError` unless the schema is at head (start-up check)."""
    rev = current_revision(engine)
    if rev != head_revision():
        raise StorageError(
            f"database schema is at {rev!r}, expected {head_revision()!r}: run `vpp db upgrade`"
        )


# -- committed-change counters (what a response cache keys on) --------------------------------
_row_versions: dict[str, int] = {}


@event.listens_for(Session, "after_flush")
def _note_changed_tables(session: Session, _ctx: Any) -> None:
    touched = session.info.setdefault("vpp.changed_tables", set())
    for obj in (*session.new, *session.dirty, *session.deleted):
        table = getattr(type(obj), "__table__", None)
        if table is not None:
            touched.add(table.name)


@event.listens_for(Session, "after_commit")
def _bump_row_versions(session: Session) -> None:
    for table in session.info.pop("vpp.changed_tables", ()):
        _row_versions[table] = _row_versions.get(table, 0) + 1


@event.listens_for(Session, "after_rollback")
def _forget_changed_tables(session: Session) -> None:
    session.info.pop("vpp.changed_tables", None)


def row_version(table: str) -> int:
    """How many commits in this process changed rows of ``table`` through the ORM.

    Read it *before* reading the rows: a cache filled under that number is stale as soon as the
    number moves. Changes made by other processes (the CLI) or by Core statements are not seen.
    """
    return _row_versions.get(table, 0)
