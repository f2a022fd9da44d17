"""PostgreSQL binary COPY output decoded into numpy columns in one pass.

The reading twin of ``ingest.copy_binary`` (which analytics may not import). When every selected
column is fixed-width and NOT NULL, every tuple of ``COPY (SELECT ...) TO STDOUT (FORMAT BINARY)``
has the same size, so everything between the header and the trailer is one big-endian structured
array: a field count (int16), then per field its length (int32) and its value. No Python object is
made per row beyond the message psycopg hands over for each tuple.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

__all__ = ["PgType", "PG_EPOCH_OFFSET_US", "tuple_dtype", "decode", "copy_out", "fetch_columns", "fetch_columns_copy"]

PgType = Literal["bool", "int2", "int4", "int8", "float4", "float8", "timestamptz"]
# The wire format of each type; timestamptz is int64 microseconds since 2000-01-01 UTC.
_WIRE: dict[str, str] = {"bool": "?", "int2": ">i2", "int4": ">i4", "int8": ">i8", "float4": ">f4",
                         "float8": ">f8", "timestamptz": ">i8"}
PG_EPOCH_OFFSET_US = 946_684_800 * 1_000_000  # 2000-01-01 minus 1970-01-01, in microseconds

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_FIXED_HEADER = len(SIGNATURE) + 8  # then flags (int32) and the header extension's length (int32)
TRAILER = b"\xff\xff"  # a field count of -1
# Bits 0-15 flag incompatible format changes and bit 16 says OIDs follow: a reader must stop at any of them.
_UNSUPPORTED_FLAGS = 0x1FFFF
_INFINITY = (np.iinfo(np.int64).min, np.iinfo(np.int64).max)  # how -infinity and infinity travel


def tuple_dtype(fields: Sequence[tuple[str, PgType]]) -> np.dtype[np.void]:
    """The structured dtype of one tuple of ``fields`` (name, type) on the wire."""
    parts = [("_nfields", ">i2")]
    for name, pg_type in fields:
        parts += [(f"_len_{name}", ">i4"), (name, _WIRE[pg_type])]
    return np.dtype(parts)


def decode(payload: bytes | bytearray | memoryview,
           fields: Sequence[tuple[str, PgType]]) -> dict[str, npt.NDArray[Any]]:
    """The columns of a complete binary COPY stream (header, tuples, trailer), in native byte order.

    ``fields`` names the selected columns in order with their types; each must be fixed-width and
    never NULL (cast in the SELECT to be sure). Timestamps come back as int64 microseconds since the
    Unix epoch (UTC), the convention of ``ingest.rows``.

    Raises:
        ValueError: the stream is not binary COPY, is cut short, or does not match ``fields``
            (another column count or type, or a NULL somewhere).
    """
    view = memoryview(payload).cast("B")
    if len(view) < _FIXED_HEADER + len(TRAILER) or view[:len(SIGNATURE)] != SIGNATURE:
        raise ValueError("not a binary COPY stream: the PGCOPY signature is missing")
    flags, extension = struct.unpack_from(">iI", view, len(SIGNATURE))
    if flags & _UNSUPPORTED_FLAGS:
        raise ValueError(f"binary COPY header flags {flags:#x} are not supported (OIDs or a newer format)")
    start = _FIXED_HEADER + extension
    if len(view) < start + len(TRAILER) or view[-len(TRAILER):] != TRAILER:
        raise ValueError("binary COPY stream is cut short: no trailer")
    body = view[start:len(view) - len(TRAILER)]
    dtype = tuple_dtype(fields)
    if len(body) % dtype.itemsize:
        raise ValueError(f"binary COPY tuples are not {dtype.itemsize} bytes each: a column is NULL, variable-width "
                         f"or of another type than {[t for _, t in fields]}")
    tuples = np.frombuffer(body, dtype=dtype)
    # A NULL or another type would shift every later tuple; checking each header catches it.
    if tuples.size and (tuples["_nfields"] != len(fields)).any():
        raise ValueError(f"binary COPY tuples do not all have {len(fields)} fields")
    columns: dict[str, npt.NDArray[Any]] = {}
    for name, pg_type in fields:
        wire = np.dtype(_WIRE[pg_type])
        if tuples.size and (tuples[f"_len_{name}"] != wire.itemsize).any():
            raise ValueError(f"column {name!r} is NULL or not {pg_type} in some rows; cast it to {pg_type} NOT NULL")
        column = tuples[name].astype(wire.newbyteorder("="))
        if pg_type == "timestamptz":
            if tuples.size and np.isin(column, _INFINITY).any():
                raise ValueError(f"column {name!r} holds an infinite timestamp, which has no datetime")
            column += PG_EPOCH_OFFSET_US
        columns[name] = column
    return columns


def copy_out(conn: psycopg.Connection[Any], query: sql.Composable,
             params: Mapping[str, Any] | None = None) -> bytearray:
    """The whole binary COPY output of the SELECT ``query``, in one buffer.

    COPY takes no server-side parameters: psycopg merges ``params`` into the statement client-side.
    """
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(query)
    buf = bytearray()
    with conn.cursor() as cur, cur.copy(statement, params) as copy:
        # PostgreSQL sends one message per tuple; growing one bytearray keeps no object per row alive.
        for chunk in copy:
            buf += chunk
    return buf


def fetch_columns_copy(conn: psycopg.Connection[Any], query: sql.Composable, params: Mapping[str, Any] | None,
                       fields: Sequence[tuple[str, PgType]]) -> dict[str, npt.NDArray[Any]]:
    """Run the SELECT ``query`` through binary COPY and decode its ``fields`` (see :func:`decode`)."""
    return decode(copy_out(conn, query, params), fields)


# Each type's binary send function: the server packs a whole column into one bytea.
_SEND = {"bool": "boolsend", "int2": "int2send", "int4": "int4send", "int8": "int8send", "float4": "float4send",
         "float8": "float8send", "timestamptz": "timestamptz_send"}
AGG_MAX_ROWS = 50_000_000   # one bytea per column must stay under PostgreSQL's 1 GB value limit


def fetch_columns(conn: psycopg.Connection[Any], query: sql.Composable, params: Mapping[str, Any] | None,
                  fields: Sequence[tuple[str, PgType]]) -> dict[str, npt.NDArray[Any]]:
    """The SELECT ``query``'s ``fields`` as numpy columns (native order; timestamps as Unix microseconds).

    The server concatenates each column's binary values into one bytea (``string_agg`` of the
    type's send function), so the whole result is one row of a few large values: about twice as
    fast as binary COPY, which costs psycopg one message per row. All aggregates of one query see
    the rows in the same order, so the columns stay aligned; a NULL (which string_agg would skip)
    is caught by comparing each column's length with ``count(*)``.
    """
    aggs = sql.SQL(", ").join(
        sql.SQL("coalesce(string_agg({}(q.{}), ''::bytea), ''::bytea)").format(sql.SQL(_SEND[t]), sql.Identifier(n))
        for n, t in fields)
    statement = sql.SQL("SELECT count(*), {} FROM ({}) q").format(aggs, query)
    # Not prepared: a generic plan cannot prune the partitions by the time range, and ranges change every call.
    row = conn.execute(statement, params, binary=True, prepare=False).fetchone()
    assert row is not None
    n_rows = int(row[0])
    if n_rows > AGG_MAX_ROWS:  # pragma: no cover - a frame this large goes through COPY instead
        return fetch_columns_copy(conn, query, params, fields)
    columns: dict[str, npt.NDArray[Any]] = {}
    for (name, pg_type), data in zip(fields, row[1:], strict=True):
        wire = np.dtype(_WIRE[pg_type])
        column = np.frombuffer(data, dtype=wire).astype(wire.newbyteorder("="))
        if len(column) != n_rows:
            raise ValueError(f"column {name!r} is NULL in some rows; cast it to {pg_type} NOT NULL")
        if pg_type == "timestamptz":
            if column.size and np.isin(column, _INFINITY).any():
                raise ValueError(f"column {name!r} holds an infinite timestamp, which has no datetime")
            column += PG_EPOCH_OFFSET_US
        columns[name] = column
    return columns
