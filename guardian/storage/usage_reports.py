"""Usage read back for people: reports grouped in SQL (`sealgate-ctl usage report`) and one
principal's own figures (`usage.mine`). Read-only; the ledger writes (guardian.storage.ledger).
"""

from __future__ import annotations

from guardian.storage.database import Database, Row

# usage.report groupings -> the column grouped on ("day" is computed by the backend)
USAGE_GROUPS = {
    "user": "principal",
    "model": "model",
    "provider": "provider",
    "tool": "tool",
    "day": "ts",
}
_USAGE_REPORT = (
    "SELECT {key} AS key, COUNT(*) AS calls,"
    " SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END) AS errors,"
    " SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,"
    " SUM(COALESCE(cost_usd, 0)) AS cost_usd"
    " FROM {s}usage WHERE ts >= ? GROUP BY {key} ORDER BY {key}"
)
# By user: the name people read, grouped with the user's id, so a deleted user and a new
# user of the same name are two rows (the operator and open mode have the id '').
_USAGE_BY_USER = (
    "SELECT principal AS key, user_id, COUNT(*) AS calls,"
    " SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END) AS errors,"
    " SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,"
    " SUM(COALESCE(cost_usd, 0)) AS cost_usd"
    " FROM {s}usage WHERE ts >= ? GROUP BY principal, user_id ORDER BY principal, user_id"
)

# one principal's usage (`usage.mine`): a user by id, a principal without one by name
_USAGE_OF = (
    "SELECT COUNT(*) AS calls,"
    " SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END) AS errors,"
    " SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,"
    " SUM(COALESCE(cost_usd, 0)) AS cost_usd FROM {s}usage"
)
_USAGE_OF_USER = _USAGE_OF + " WHERE user_id = ? AND ts >= ?"
_USAGE_OF_NAME = _USAGE_OF + " WHERE principal = ? AND user_id = '' AND ts >= ?"


class UsageReportRepository(Database):
    async def usage_report(self, since: float, by: str) -> list[Row]:
        """Calls, errors, tokens and cost since a time, grouped in SQL by one of
        `USAGE_GROUPS`; rows sorted by their key."""
        column = USAGE_GROUPS.get(by)
        if column is None:
            raise ValueError(f"usage can be grouped by {', '.join(USAGE_GROUPS)}, not {by!r}")
        if by == "user":
            rows = await self.fetch(_USAGE_BY_USER.format(**self.types), since)
        else:
            key = self.day_of("ts") if by == "day" else column
            rows = await self.fetch(_USAGE_REPORT.format(key=key, **self.types), since)
        return [
            {
                "key": str(row["key"] or "-"),
                **({"user_id": str(row["user_id"] or "")} if by == "user" else {}),
                "calls": int(row["calls"]),
                "errors": int(row["errors"]),
                "input_tokens": int(row["input_tokens"]),
                "output_tokens": int(row["output_tokens"]),
                "cost_usd": round(float(row["cost_usd"]), 8),
            }
            for row in rows
        ]

    async def usage_of(self, since: float, principal: str, user_id: str) -> Row:
        """One principal's calls, errors, tokens and cost since a time: a user's by its id
        (its indexed column), a principal without one (open mode, the operator) by name."""
        query = _USAGE_OF_USER if user_id else _USAGE_OF_NAME
        row = await self.fetchrow(self.q(query), user_id or principal, since) or {}
        return {
            "calls": int(row.get("calls") or 0),
            "errors": int(row.get("errors") or 0),
            "input_tokens": int(row.get("input_tokens") or 0),
            "output_tokens": int(row.get("output_tokens") or 0),
            "cost_usd": round(float(row.get("cost_usd") or 0), 8),
        }
