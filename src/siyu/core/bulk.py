"""Set-based writes for the paths that add thousands of rows a second (a sync's first import of a corp).

``insert_rows`` and ``update_rows`` take plain row tuples: no model instances, no per-row SQL compilation.
Inserts are multi-row ``INSERT … VALUES … ON CONFLICT DO NOTHING RETURNING``: rows a unique constraint
refuses are skipped and the columns asked for come back for the rows that went in — like
``bulk_create(ignore_conflicts=True)``, but telling which. On PostgreSQL the values are bound on the server in
binary with PostgreSQL's own ``$n`` placeholders (psycopg's ``RawCursor``: nothing quoted into the SQL, no
placeholder parsing), which costs about a quarter of the client CPU of Django's cursor; SQLite (≥ 3.35)
understands the same statement through Django's cursor. Updates join a list of values (``unnest`` of one
array per column on PostgreSQL, ``VALUES`` on SQLite). Callers stay their app's services (the only write
path); this is how they write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import connection, models

# PostgreSQL's protocol carries at most 65,535 parameters per statement; Django knows SQLite's limit.
POSTGRES_MAX_PARAMS = 65535


def _fields(model: type[models.Model], names: Sequence[str]) -> list[models.Field[Any, Any]]:
    fields = []
    for name in names:
        found = model._meta.get_field(name)
        if not isinstance(found, models.Field) or found.column is None:
            raise ValueError(f"{model.__name__}.{name} is not a concrete field")
        fields.append(found)
    return fields


def _adapter(field: models.Field[Any, Any]) -> Callable[[Any], Any] | None:
    """How a Python value of ``field`` is written, for the fields that need more than the driver does."""
    postgres = connection.vendor == "postgresql"
    if isinstance(field, models.DateTimeField):
        # PostgreSQL takes aware datetimes as they are; SQLite gets naive UTC text, as the ORM writes it.
        return None if postgres else connection.ops.adapt_datetimefield_value
    if isinstance(field, models.JSONField):
        if postgres and field.encoder is None:
            from psycopg.types.json import Jsonb

            return Jsonb  # what the field's own preparation wraps the value in, without its layers
        return lambda value: field.get_db_prep_save(value, connection)
    return None


def _prepare(fields: Sequence[models.Field[Any, Any]], rows: Iterable[Sequence[Any]]) -> list[Sequence[Any]]:
    adapters = [(i, a) for i, a in enumerate(_adapter(f) for f in fields) if a is not None]
    if not adapters:
        return list(rows)
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
    prepared = _prepare(fields, rows)
    if not prepared:
        return []
    table = connection.ops.quote_name(model._meta.db_table)
    back = _quoted(_fields(model, returning))
    tail = " ON CONFLICT DO NOTHING" + (f" RETURNING {back}" if back else "")
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


def update_rows(model: type[models.Model], names: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Set the columns ``names`` of the rows whose primary key leads each row tuple ``(pk, *values)``, in one
    statement per batch; returns how many rows were updated."""
    fields = _fields(model, [model._meta.pk.name, *names])
    prepared = _prepare(fields, rows)
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
