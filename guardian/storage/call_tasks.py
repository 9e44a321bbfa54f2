"""LLM calls run as tasks: the state of each, in the database, so that any guardian sharing it
answers for a task whichever guardian runs its call.

A row is written when the task starts and once more when its call ends (`status` leaves
`working` once, never to return). A cancel asked of another guardian only sets
`cancel_requested`; the guardian named by `replica` runs the call, polls for those requests
and ends its own calls. Rows expire (`expires_at`) and a sweep deletes them; an expired row
is already invisible to `get_call_task`.
"""

from __future__ import annotations

from guardian.storage.database import Database, Row


class CallTaskRepository(Database):
    """Task rows (guardian/call_tasks.py keeps the running calls and writes their state)."""

    async def add_call_task(
        self,
        task_id: str,
        owner: str,
        replica: str,
        message: str,
        now: float,
        expires_at: float,
        cap: int,
    ) -> bool:
        """A new `working` task, unless `owner` already holds `cap` unexpired ones (False).
        The count and the insert are one statement; two replicas starting at the same
        instant may still pass the cap by one each."""
        changed = await self.execute(
            self.q(
                "INSERT INTO {s}call_tasks (id, owner, replica, status, status_message,"
                " created_at, updated_at, expires_at) SELECT ?, ?, ?, 'working', ?, ?, ?, ?"
                " WHERE (SELECT COUNT(*) FROM {s}call_tasks"
                " WHERE owner = ? AND expires_at > ?) < ?"
            ),
            task_id,
            owner,
            replica,
            message,
            now,
            now,
            expires_at,
            owner,
            now,
            cap,
        )
        return changed > 0

    async def get_call_task(self, task_id: str, owner: str, now: float) -> Row | None:
        """The task if it is `owner`'s and has not expired; None alike for another's, an
        expired one and none at all."""
        return await self.fetchrow(
            self.q("SELECT * FROM {s}call_tasks WHERE id = ? AND owner = ? AND expires_at > ?"),
            task_id,
            owner,
            now,
        )

    async def end_call_task(
        self,
        task_id: str,
        status: str,
        message: str,
        result: str | None,
        error: str | None,
        now: float,
    ) -> bool:
        """A call's ending (`result` and `error` as JSON); only a `working` task ends, once."""
        changed = await self.execute(
            self.q(
                "UPDATE {s}call_tasks SET status = ?, status_message = ?, result = ?,"
                " error = ?, updated_at = ? WHERE id = ? AND status = 'working'"
            ),
            status,
            message,
            result,
            error,
            now,
            task_id,
            idempotent=True,
        )
        return changed > 0

    async def request_call_task_cancel(
        self, task_id: str, owner: str, message: str, now: float
    ) -> bool:
        """Ask the guardian running `owner`'s task to cancel it; False when there is no such
        working task (another's, finished, expired or none)."""
        changed = await self.execute(
            self.q(
                "UPDATE {s}call_tasks SET cancel_requested = 1, status_message = ?,"
                " updated_at = ? WHERE id = ? AND owner = ? AND status = 'working'"
                " AND expires_at > ?"
            ),
            message,
            now,
            task_id,
            owner,
            now,
            idempotent=True,
        )
        return changed > 0

    async def call_tasks_to_cancel(self, replica: str) -> list[str]:
        """The ids of `replica`'s working tasks whose cancel was asked for."""
        rows = await self.fetch(
            self.q(
                "SELECT id FROM {s}call_tasks WHERE replica = ? AND status = 'working'"
                " AND cancel_requested = 1"
            ),
            replica,
        )
        return [str(row["id"]) for row in rows]

    async def fail_call_tasks_of(self, replica: str, message: str, error: str, now: float) -> int:
        """`replica` (re)starts: its tasks still `working` ran in a process that is gone."""
        return await self.execute(
            self.q(
                "UPDATE {s}call_tasks SET status = 'failed', status_message = ?, error = ?,"
                " updated_at = ? WHERE replica = ? AND status = 'working'"
            ),
            message,
            error,
            now,
            replica,
            idempotent=True,
        )

    async def delete_expired_call_tasks(self, now: float) -> int:
        return await self.execute(
            self.q("DELETE FROM {s}call_tasks WHERE expires_at <= ?"), now, idempotent=True
        )
