"""Read-only queries by construction: PostgreSQL's own parser (pglast) decides what a query is.

A query passes only if it is exactly one plain SELECT (no SELECT INTO, no locking clause, no
data-modifying statement anywhere, CTEs included) whose every relation is on the allowlist
and whose every function is on the function allowlist. Schema `sealgate` (the guardian's own
tables) and the system catalogs are refused whatever the allowlist says. Running the query in
a READ ONLY transaction with a timeout and a row cap is the caller's second wall.

Pure code, no I/O: the guardian uses it for PostgreSQL, the sandbox for its own SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pglast import ast, parse_sql
from pglast.parser import ParseError

from protocol.errors import Forbidden, InvalidParams

NEVER_SCHEMAS = frozenset({"sealgate", "pg_catalog", "information_schema", "pg_toast"})

#: Functions any query may call: aggregates, string, math, date and conditional helpers.
DEFAULT_FUNCTIONS = frozenset(
    {
        # aggregates
        "count",
        "sum",
        "avg",
        "min",
        "max",
        "array_agg",
        "string_agg",
        "bool_and",
        "bool_or",
        "every",
        "stddev",
        "stddev_pop",
        "stddev_samp",
        "variance",
        "var_pop",
        "var_samp",
        "percentile_cont",
        "percentile_disc",
        "mode",
        "json_agg",
        "jsonb_agg",
        # window
        "row_number",
        "rank",
        "dense_rank",
        "ntile",
        "lag",
        "lead",
        "first_value",
        "last_value",
        # strings
        "lower",
        "upper",
        "length",
        "char_length",
        "character_length",
        "octet_length",
        "substr",
        "substring",
        "trim",
        "btrim",
        "ltrim",
        "rtrim",
        "replace",
        "concat",
        "concat_ws",
        "left",
        "right",
        "position",
        "strpos",
        "split_part",
        "initcap",
        "reverse",
        "repeat",
        "lpad",
        "rpad",
        "starts_with",
        "md5",
        "to_char",
        "regexp_replace",
        "regexp_match",
        "translate",
        # math
        "abs",
        "round",
        "ceil",
        "ceiling",
        "floor",
        "trunc",
        "sqrt",
        "power",
        "pow",
        "mod",
        "greatest",
        "least",
        "exp",
        "ln",
        "log",
        "log10",
        "sign",
        "div",
        "width_bucket",
        # dates
        "now",
        "date_trunc",
        "date_part",
        "extract",
        "age",
        "to_date",
        "to_timestamp",
        "make_date",
        "make_interval",
        "date",
        "datetime",
        "strftime",
        "julianday",
        # json reading
        "to_json",
        "to_jsonb",
        "json_build_object",
        "jsonb_build_object",
        "json_extract_path_text",
        "jsonb_extract_path_text",
        "json_array_length",
        "jsonb_array_length",
        "json_extract",
        # conditionals and casts written as calls
        "coalesce",
        "nullif",
        "ifnull",
        "cast",
    }
)

_WRITES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
_REFUSED_NODES = (ast.IntoClause, ast.LockingClause, ast.RangeTableFunc, ast.CopyStmt)


@dataclass(frozen=True, slots=True)
class Policy:
    """What a query may touch. Table names are `schema.table`, lower-case."""

    tables: frozenset[str]
    functions: frozenset[str] = DEFAULT_FUNCTIONS
    default_schema: str = "public"

    @classmethod
    def of(
        cls,
        tables: Iterable[str],
        extra_functions: Iterable[str] = (),
        default_schema: str = "public",
    ) -> Policy:
        qualified = set()
        for table in tables:
            name = table.strip().lower()
            if name:
                qualified.add(name if "." in name else f"{default_schema}.{name}")
        if any(_system_schema(name.split(".", 1)[0]) for name in qualified):
            raise ValueError("tables in sealgate or the system schemas cannot be allowlisted")
        functions = DEFAULT_FUNCTIONS | {f.strip().lower() for f in extra_functions if f.strip()}
        return cls(frozenset(qualified), frozenset(functions), default_schema)


def _nodes_in(value: object) -> Iterator[ast.Node]:
    """Nodes in an attribute value, however deeply nested in lists (RangeFunction nests)."""
    if isinstance(value, ast.Node):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _nodes_in(item)


def _slots(node: ast.Node) -> Iterable[str]:
    """The attribute names of a pglast node (its generated classes list them as slots)."""
    slots: Iterable[str] = getattr(node, "__slots__", ())
    return slots


def _children(node: ast.Node) -> Iterator[ast.Node]:
    for name in _slots(node):
        yield from _nodes_in(getattr(node, name, None))


def _walk(node: ast.Node) -> Iterator[ast.Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(_children(current))


def _check_relations(node: ast.Node, policy: Policy, scope: frozenset[str]) -> None:
    """Check every table reference with the CTE names in scope where it stands, resolved as
    PostgreSQL resolves them: a WITH's names are visible in its own statement's body (and
    subqueries in it), to later siblings, and to themselves only when RECURSIVE; never to a
    sibling FROM item outside that statement. Names are compared exactly as the parser left
    them (unquoted names are already folded), so `"Customers"` never hides `customers`."""
    if isinstance(node, ast.RangeVar):
        _check_relation(node, policy, scope)
        return
    if isinstance(node, ast.SelectStmt) and node.withClause is not None:
        ctes = [c for c in node.withClause.ctes or () if isinstance(c, ast.CommonTableExpr)]
        names = [c.ctename or "" for c in ctes]
        visible = set(scope)
        if node.withClause.recursive:
            visible.update(names)
        for cte, name in zip(ctes, names, strict=True):
            if cte.ctequery is not None:
                _check_relations(cte.ctequery, policy, frozenset(visible))
            visible.add(name)
        inner = frozenset(visible)
        for slot in _slots(node):
            if slot != "withClause":
                for child in _nodes_in(getattr(node, slot, None)):
                    _check_relations(child, policy, inner)
        return
    for child in _children(node):
        _check_relations(child, policy, scope)


def check(sql: str, policy: Policy) -> str:
    """Raise `InvalidParams` (unparsable) or `Forbidden` (not read-only or not allowed);
    return the one statement's own text (no trailing `;` or comment after it)."""
    if "\x00" in sql:
        raise InvalidParams("the query contains a NUL character")
    try:
        statements = parse_sql(sql)
    except ParseError as exc:
        raise InvalidParams(f"not valid SQL: {exc}") from None
    if len(statements) != 1:
        raise Forbidden("exactly one statement is allowed")
    statement = statements[0].stmt
    if not isinstance(statement, ast.SelectStmt):
        raise Forbidden(f"only SELECT is allowed, not {type(statement).__name__}")
    for node in _walk(statement):
        if isinstance(node, _WRITES):
            raise Forbidden("data-modifying statements are not allowed, not even in a WITH")
        if isinstance(node, _REFUSED_NODES):
            raise Forbidden(f"{type(node).__name__} is not allowed in a read-only query")
        if isinstance(node, ast.FuncCall):
            _check_function(node, policy)
    _check_relations(statement, policy, frozenset())
    start, length = statements[0].stmt_location or 0, statements[0].stmt_len or 0
    return sql[start : start + length] if length else sql[start:]


def _system_schema(schema: str) -> bool:
    lowered = schema.lower()
    return lowered in NEVER_SCHEMAS or lowered.startswith("pg_")


def _check_relation(node: ast.RangeVar, policy: Policy, ctes: frozenset[str]) -> None:
    relation = node.relname or ""
    schema = node.schemaname or ""
    if node.catalogname:
        raise Forbidden("cross-database references are not allowed")
    if not schema and relation in ctes:
        return
    if not schema and relation.lower().startswith(("pg_", "sqlite_")):
        # Unqualified, PostgreSQL looks in pg_catalog before the search path (and SQLite
        # keeps its schema table under these names): a system relation, never allowed.
        raise Forbidden(f"table {relation} is a system relation and never allowed")
    qualified = f"{schema or policy.default_schema}.{relation}"
    if _system_schema(schema or policy.default_schema) or qualified not in policy.tables:
        raise Forbidden(f"table {qualified} is not on the allowlist")


def _check_function(node: ast.FuncCall, policy: Policy) -> None:
    parts = [getattr(part, "sval", "") or "" for part in node.funcname or ()]
    name = parts[-1].lower() if parts else ""
    schema = parts[0].lower() if len(parts) > 1 else ""
    if schema and schema != "pg_catalog":
        raise Forbidden(f"function {'.'.join(parts)} is not allowed")
    if name not in policy.functions:
        raise Forbidden(f"function {name}() is not allowed")
