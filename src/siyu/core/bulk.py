"""Set-based writes for the paths that add thousands of rows a second (a sync's first import of a corp).

``insert_rows`` and ``update_rows`` take plain row tuples: no model instances, no per-row SQL compilation.
``insert_rows`` skips rows a unique constraint refuses and returns the columns asked for of the rows that went
in — like ``bulk_create(ignore_conflicts=True)``, but telling which.

On PostgreSQL a batch of ``COPY_MIN_ROWS`` or more is streamed with ``COPY … FROM STDIN`` in binary (psycopg's
``cursor.copy``): no statement to parse or plan, nothing quoted, about 40 % less server CPU and a third less
client CPU than the multi-row ``INSERT`` (measured with 76,000 timeline events). ``COPY`` cannot skip
conflicts nor return anything, so ids are drawn from the table's sequence first (one statement for the
batch), the returned columns come from the rows themselves, and the ``COPY`` runs in a savepoint: should a
unique constraint refuse a row (a concurrent writer came first; a duplicate within the batch), the savepoint
is rolled back and the batch goes through the ``INSERT`` below instead — same result, only slower.

Smaller batches, and SQLite (≥ 3.35), use a multi-row ``INSERT … VALUES … ON CONFLICT DO NOTHING RETURNING``.
On PostgreSQL its values are bound on the server in binary with PostgreSQL's own ``$n`` placeholders
(psycopg's ``RawCursor``: no placeholder parsing), about a quarter of the client CPU of Django's cursor.
Updates join a list of values (``unnest`` of one array per column on PostgreSQL, ``VALUES`` on SQLite).
Callers stay their app's services (the only write path); this is how they write.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import connection, models, transaction

# PostgreSQL's protocol carries at most 65,535 parameters per statement; Django knows SQLite's limit.
POSTGRES_MAX_PARAMS = 65535
# Below this many rows one multi-row INSERT (a single round trip) beats a savepoint, the ids' statement and a
# COPY (five round trips). Measured with timeline events on a local server: INSERT 1.3 ms and COPY 1.6 ms for
# 40 rows, 2.9 ms and 2.3 ms for 80, 13.8 ms and 8.9 ms for 500 (server CPU per row 20 µs and 12.5 µs).
COPY_MIN_ROWS = 64


def _fields(model: type[models.Model], names: Sequence[str]) -> list[models.Field[Any, Any]]:
    fields = []
    for name in names:
        found = model._meta.get_field(name)
        if not isinstance(found, models.Field) or found.column is None:
            raise ValueError(f"{model.__name__}.{name} is not a concrete field")
        fields.append(found)
    return fields


def _adapter(field: models.Field[Any, Any], *, copy: bool = False) -> Callable[[Any], Any] | None:
    """How a Python value of ``field`` is written, for the fields that need more than the driver does
    (``copy``: in a binary ``COPY``, whose column types are given, so psycopg knows JSON from text)."""
    postgres = connection.vendor == "postgresql"
    if isinstance(field, models.DateTimeField):
        # PostgreSQL takes aware datetimes as they are; SQLite gets naive UTC text, as the ORM writes it.
        return None if postgres else connection.ops.adapt_datetimefield_value
    if isinstance(field, models.JSONField):
        if postgres and field.encoder is None:
            if copy:
                return None
            from psycopg.types.json import Jsonb

            return Jsonb  # what the field's own preparation wraps the value in, without its layers
        return lambda value: field.get_db_prep_save(value, connection)
    return None


def _prepare(
    fields: Sequence[models.Field[Any, Any]], rows: list[Sequence[Any]], *, copy: bool = False
) -> list[Sequence[Any]]:
    adapters = [(i, a) for i, a in enumerate(_adapter(f, copy=copy) for f in fields) if a is not None]
    if not adapters:
        return rows
    prepared: list[Sequence[Any]] = []
    for row in rows:
        values = list(row)
        for i, adapt in adapters:
            if values[i] is not None:
                values[i] = adapt(values[i])
        prepared.append(values)
    return prepared


def _quoted(fields: Sequence[models.Field[Any, Any]]) -> str:
    return ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)


def _array_type(field: models.Field[Any, Any]) -> str:
    """The SQL array type of a column (``varchar(64)[]``), for ``unnest`` on PostgreSQL."""
    db_type = field.rel_db_type(connection) if field.is_relation else field.db_type(connection)
    if db_type is None or "serial" in db_type:
        raise ValueError(f"no array type for {field}")
    return f"{db_type}[]"


def _unnest(fields: Sequence[models.Field[Any, Any]], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
    """``unnest(%s::type[], …)`` with one list per column."""
    sql = ", ".join(f"%s::{_array_type(f)}" for f in fields)
    return f"unnest({sql})", [list(column) for column in zip(*rows, strict=True)]


def _values(width: int, count: int) -> str:
    one = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([one] * count)


def _cursor(*, raw: bool = False) -> Any:
    """A cursor in the current transaction; on PostgreSQL one that binds parameters on the server (``raw``:
    with ``$n`` placeholders)."""
    connection.ensure_connection()
    if connection.vendor == "postgresql":
        import psycopg

        return psycopg.RawCursor(connection.connection) if raw else psycopg.Cursor(connection.connection)
    return connection.cursor()


def in_list(column: str, values: Iterable[Any], *, negate: bool = False) -> tuple[str, list[Any]]:
    """``column`` is one of ``values`` (``negate``: none of them), as SQL with one parameter whatever their
    number: ``= ANY(array)`` (``<> ALL``, hashed since PostgreSQL 15) on PostgreSQL, a JSON array's elements
    on SQLite. The ORM's ``__in`` writes and binds one placeholder per value, which costs more client CPU than
    the rest of a sync page's reads together."""
    if connection.vendor == "postgresql":
        return f"{column} {'<> ALL' if negate else '= ANY'}(%s)", [list(values)]
    test = "NOT IN" if negate else "IN"
    return f"{column} {test} (SELECT value FROM json_each(%s))", [json.dumps(list(values))]  # noqa: S608


# On PostgreSQL a read of many keys at once (``= ANY``) is planned from the statistics, which in a first sync
# lag behind tables that double every few seconds: planned for a table of a few thousand rows, such a read
# hashes or scans the whole table instead of looking each key up (measured 30–130 ms instead of 2–10 ms, a
# third of the server's CPU in a sync's customers stage). The sync's hot reads therefore walk their keys
# one by one: ``FROM unnest(%s::type[]) AS k(key) CROSS JOIN LATERAL (… WHERE column = k.key OFFSET 0)``,
# the ``OFFSET 0`` keeping the subquery a lookup per key (an index probe) whatever the planner estimates.
def key_list(values: Iterable[Any], db_type: str) -> tuple[str, list[Any]]:
    """A PostgreSQL ``FROM`` item with one row per value, its column ``key``: ``unnest(%s::db_type[]) AS
    k(key)`` and its parameter (see above)."""
    return f"unnest(%s::{db_type}[]) AS k(key)", [list(values)]


def select_rows(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of a hand-written read (``%s`` placeholders), in the current transaction; on PostgreSQL bound
    on the server. JSON columns come back as text, as the ORM's own reads get them (``json.loads`` them)."""
    with _cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]


_PLACEHOLDERS: list[str] = []


def _numbered_values(width: int, count: int) -> str:
    """``($1, $2), ($3, $4)`` for ``count`` rows of ``width`` values."""
    needed = width * count
    if len(_PLACEHOLDERS) < needed:  # made once, up to the largest statement so far (≤ 65,535)
        _PLACEHOLDERS.extend(f"${n}" for n in range(len(_PLACEHOLDERS) + 1, needed + 1))
    return ", ".join(
        "(" + ", ".join(_PLACEHOLDERS[start : start + width]) + ")" for start in range(0, needed, width)
    )


def _chunks(rows: list[Sequence[Any]], width: int) -> Iterable[list[Sequence[Any]]]:
    per_statement = max(1, (connection.features.max_query_params or POSTGRES_MAX_PARAMS) // width)
    for start in range(0, len(rows), per_statement):
        yield rows[start : start + per_statement]


def insert_rows(
    model: type[models.Model],
    names: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (values in the order of the field ``names``; every column without a database default)
    skipping conflicts; the ``returning`` columns of the rows inserted, in no particular order."""
    fields = _fields(model, names)
    given = list(rows)
    if not given:
        return []
    back = _fields(model, returning)
    if connection.vendor == "postgresql" and len(given) >= COPY_MIN_ROWS:
        copied = _copy(model, fields, given, back)
        if copied is not None:
            return copied
    prepared = _prepare(fields, given)
    table = connection.ops.quote_name(model._meta.db_table)
    tail = " ON CONFLICT DO NOTHING" + (f" RETURNING {_quoted(back)}" if back else "")
    postgres = connection.vendor == "postgresql"
    result: list[tuple[Any, ...]] = []
    with _cursor(raw=True) as cursor:
        for chunk in _chunks(prepared, len(fields)):
            params = [value for row in chunk for value in row]
            if postgres:
                values = _numbered_values(len(fields), len(chunk))
            else:
                values = _values(len(fields), len(chunk))
            sql = f"INSERT INTO {table} ({_quoted(fields)}) VALUES {values}{tail}"  # noqa: S608
            if postgres:
                cursor.execute(sql, params, binary=True)
            else:
                cursor.execute(sql, params)
            if back:
                result.extend(tuple(r) for r in cursor.fetchall())
    return result


_COPY_TYPES: dict[tuple[str, str], int | None] = {}
_SEQUENCES: dict[str, str] = {}


def _copy_type(field: models.Field[Any, Any]) -> int | None:
    """The oid of a column's PostgreSQL type (``varchar(64)`` → varchar's), which a binary ``COPY`` must be
    told; None for a type psycopg does not know by name (the caller then inserts instead)."""
    key = (field.model._meta.db_table, str(field.column))
    if key not in _COPY_TYPES:
        from psycopg.postgres import types

        db_type = field.rel_db_type(connection) if field.is_relation else field.db_type(connection)
        info = types.get(db_type.split("(")[0].strip()) if db_type else None
        _COPY_TYPES[key] = info.oid if info is not None else None
    return _COPY_TYPES[key]


def _next_ids(cursor: Any, model: type[models.Model], count: int) -> list[int]:
    """``count`` values of the primary key's sequence, for rows about to be copied in."""
    table = model._meta.db_table
    if table not in _SEQUENCES:
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, model._meta.pk.column])
        row = cursor.fetchone()
        _SEQUENCES[table] = row[0] if row else ""
    if not _SEQUENCES[table]:
        raise ValueError(f"{table} has no sequence")
    cursor.execute(
        "SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [_SEQUENCES[table], count], binary=True
    )
    return [row[0] for row in cursor.fetchall()]


def _copy(
    model: type[models.Model],
    fields: Sequence[models.Field[Any, Any]],
    rows: list[Sequence[Any]],
    back: Sequence[models.Field[Any, Any]],
) -> list[tuple[Any, ...]] | None:
    """``rows`` streamed in with a binary ``COPY`` in a savepoint, and the ``back`` columns of every row;
    None when a unique constraint refused one of them (the savepoint is rolled back: nothing went in) or a
    column's type cannot be copied."""
    import psycopg

    pk = model._meta.pk
    if any(f is not pk and f not in fields for f in back):
        return None  # a column the rows do not give (a database default): only INSERT … RETURNING knows it
    types = [_copy_type(f) for f in fields]
    with_ids = any(f is pk for f in back)
    if with_ids:
        types.insert(0, _copy_type(pk))
    if any(t is None for t in types):
        return None
    columns = _quoted([pk, *fields] if with_ids else fields)
    table = connection.ops.quote_name(model._meta.db_table)
    prepared = _prepare(fields, rows, copy=True)
    ids: list[int] = []
    try:
        with transaction.atomic(), _cursor() as cursor:  # the savepoint (a transaction when there is none)
            if with_ids:
                ids = _next_ids(cursor, model, len(prepared))
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(types)
                if with_ids:
                    for pk_value, row in zip(ids, prepared, strict=True):
                        copy.write_row((pk_value, *row))
                else:
                    for row in prepared:
                        copy.write_row(row)
    except psycopg.errors.UniqueViolation:
        return None
    if not back:
        return []
    # The returned columns taken one at a time (the ids, or a column of the rows), then zipped into tuples:
    # no (id, *row) tuple built per row to pick from.
    picked = [ids if f is pk else list(map(operator.itemgetter(list(fields).index(f)), rows)) for f in back]
    return list(zip(*picked, strict=True))


def update_rows(model: type[models.Model], names: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Set the columns ``names`` of the rows whose primary key leads each row tuple ``(pk, *values)``, in one
    statement per batch; returns how many rows were updated."""
    fields = _fields(model, [model._meta.pk.name, *names])
    prepared = _prepare(fields, list(rows))
    if not prepared:
        return 0
    table = connection.ops.quote_name(model._meta.db_table)
    pk = connection.ops.quote_name(str(fields[0].column))
    updated = 0
    with _cursor() as cursor:
        # On PostgreSQL one array per column: any number of rows in one statement.
        for chunk in [prepared] if connection.vendor == "postgresql" else _chunks(prepared, len(fields)):
            if connection.vendor == "postgresql":
                source, params = _unnest(fields, chunk)
                names_sql = ", ".join(f"v{i}" for i in range(len(fields)))
                sets = ", ".join(
                    f"{connection.ops.quote_name(str(f.column))} = v.v{i}" for i, f in enumerate(fields) if i
                )
                sql = f"UPDATE {table} SET {sets} FROM {source} AS v({names_sql}) WHERE {table}.{pk} = v.v0"  # noqa: S608
            else:
                params = [value for row in chunk for value in row]
                # SQLite names a VALUES list's columns column1, column2, …
                sets = ", ".join(
                    f"{connection.ops.quote_name(str(f.column))} = v.column{i + 1}"
                    for i, f in enumerate(fields)
                    if i
                )
                values = _values(len(fields), len(chunk))
                sql = f"UPDATE {table} SET {sets} FROM (VALUES {values}) AS v WHERE {table}.{pk} = v.column1"  # noqa: S608
            cursor.execute(sql, params)
            updated += max(cursor.rowcount, 0)
    return updated


def insert_one(obj: models.Model) -> bool:
    """Insert one new instance unless a unique constraint refuses it, in one statement: ``INSERT … ON CONFLICT
    DO NOTHING RETURNING`` the primary key, where ``create`` in a savepoint and a read after the conflict cost
    three or four. Sets the primary key and returns True when it went in, False when a row with the same
    unique values was there already (``obj`` is then left unsaved). Other errors (a missing value, a foreign
    key) raise as ``create``'s would — not SQLite's ``INSERT OR IGNORE``, which would skip those rows too.

    Written through Django's cursor, in the caller's transaction: a conflict does not break it."""
    from django.db.models.sql import InsertQuery

    meta = obj._meta
    fields = [f for f in meta.local_concrete_fields if f is not meta.pk or obj.pk is not None]
    query = InsertQuery(type(obj))
    query.insert_values(fields, [obj])
    compiler = query.get_compiler(connection=connection)
    compiler.returning_fields = [meta.pk]
    [(sql, params)] = compiler.as_sql()
    insert, returning = sql.rsplit(" RETURNING ", 1)
    sql = f"{insert} ON CONFLICT DO NOTHING RETURNING {returning}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = connection.alias
    return True
