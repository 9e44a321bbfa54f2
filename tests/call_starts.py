"""A call's start as the storage tests write it: a reservation holding nothing."""

from __future__ import annotations

import time
import uuid

from guardian.storage.ledger import Reservation


def call_start() -> Reservation:
    return Reservation(
        id=uuid.uuid4().hex,
        principal="p",
        window_start=1000.0,
        amount=0.0,
        created_at=time.time(),
        owner="me",
        shared=False,
        tool="chat",
        provider="x",
        model="m",
    )
