"""What lets any replica answer a session another opened: the deployment's session-id key,
the legacy SSE sessions each guardian's sandbox holds the stream of, and the messages relayed
to them (guardian/relay.py). Relayed rows live seconds: the holder takes them at once."""

from __future__ import annotations

from collections.abc import Sequence

from guardian.storage.database import Database, Row


class RelayRepository(Database):
    async def deployment_key(self, name: str, candidate: str, now: float) -> str:
        """The deployment's key `name`: `candidate` if no guardian stored one first."""
        await self.execute(
            self.q(
                "INSERT INTO {s}deployment_keys (name, value, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO NOTHING"
            ),
            name,
            candidate,
            now,
        )
        row = await self.fetchrow(
            self.q("SELECT value FROM {s}deployment_keys WHERE name = ?"), name, idempotent=True
        )
        if row is None:  # pragma: no cover - the insert above or another's is there
            raise RuntimeError(f"deployment key {name} is missing")
        return str(row["value"])

    async def add_relay_session(
        self, session_id: str, owner: str, replica: str, now: float
    ) -> bool:
        """Register a stream held here; False when the id is already someone's."""
        changed = await self.execute(
            self.q(
                "INSERT INTO {s}relay_sessions (id, owner, replica, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
            ),
            session_id,
            owner,
            replica,
            now,
        )
        return changed > 0

    async def relay_session_owner(self, session_id: str) -> str | None:
        row = await self.fetchrow(
            self.q("SELECT owner FROM {s}relay_sessions WHERE id = ?"), session_id, idempotent=True
        )
        return None if row is None else str(row["owner"])

    async def drop_relay_sessions(self, session_ids: Sequence[str]) -> None:
        for session_id in session_ids:
            await self.execute(self.q("DELETE FROM {s}relay_sessions WHERE id = ?"), session_id)
            await self.execute(
                self.q("DELETE FROM {s}relay_messages WHERE session_id = ?"), session_id
            )

    async def drop_relay_sessions_of(self, replica: str) -> None:
        """A guardian starting again holds no stream: forget the ones it held."""
        await self.execute(
            self.q(
                "DELETE FROM {s}relay_messages WHERE session_id IN"
                " (SELECT id FROM {s}relay_sessions WHERE replica = ?)"
            ),
            replica,
        )
        await self.execute(self.q("DELETE FROM {s}relay_sessions WHERE replica = ?"), replica)

    async def add_relay_message(self, session_id: str, body: str, now: float) -> int:
        row = await self.fetchrow(
            self.q(
                "INSERT INTO {s}relay_messages (session_id, body, created_at) VALUES (?, ?, ?)"
                " RETURNING id"
            ),
            session_id,
            body,
            now,
        )
        if row is None:  # pragma: no cover - RETURNING always answers
            raise RuntimeError("the relayed message was not stored")
        return int(row["id"])

    async def relay_messages_for(self, session_ids: Sequence[str]) -> list[Row]:
        """Messages waiting for the streams held here, oldest first."""
        if not session_ids:
            return []
        marks = ", ".join("?" for _ in session_ids)
        return await self.fetch(
            self.q(
                "SELECT id, session_id, body FROM {s}relay_messages"  # noqa: S608
                f" WHERE session_id IN ({marks}) ORDER BY id"
            ),
            *session_ids,
            idempotent=True,
        )

    async def take_relay_message(self, message_id: int) -> bool:
        """Claim one message (True once, for one taker)."""
        changed = await self.execute(
            self.q("DELETE FROM {s}relay_messages WHERE id = ?"), message_id
        )
        return changed > 0

    async def sweep_relay_messages(self, before: float) -> None:
        """Messages nobody took (their stream closed as they were sent)."""
        await self.execute(self.q("DELETE FROM {s}relay_messages WHERE created_at < ?"), before)
