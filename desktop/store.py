"""Chats and settings on the user's own disk (platformdirs), sent nowhere but the user's hub.

One JSON file per chat under the data directory; `settings.json` under the config directory.
Writes go to a temp file and are renamed, so a crash never leaves half a chat.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

APP_NAME = "SealGate"
#: The port a hub serves on unless its `.pyfun` says otherwise (`[HUB] port`).
DEFAULT_HUB_PORT = 7860


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def write_private(path: Path, text: str) -> None:
    """Atomically, readable by the user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temp, path)


@dataclass(kw_only=True)
class Message:
    role: str  # "user" | "assistant" | "error"
    text: str
    at: float = field(default_factory=time.time)
    tool: str = ""
    attachments: list[str] = field(default_factory=list)  # file names only
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class Chat:
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    title: str = "New chat"
    created: float = field(default_factory=time.time)
    messages: list[Message] = field(default_factory=list)


class ChatStore:
    """The chats of one user; each saved as soon as it changes."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or data_dir()) / "chats"

    def load_all(self) -> list[Chat]:
        chats: list[Chat] = []
        for path in sorted(self.root.glob("*.json")):
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                messages = [Message(**m) for m in raw.pop("messages", [])]
                chats.append(Chat(**raw, messages=messages))
            except (OSError, ValueError, TypeError):
                continue  # a damaged file is skipped, never fatal
        return sorted(chats, key=lambda c: c.created)

    def save(self, chat: Chat) -> None:
        write_private(self.root / f"{chat.id}.json", json.dumps(asdict(chat), indent=1))

    def delete(self, chat: Chat) -> None:
        (self.root / f"{chat.id}.json").unlink(missing_ok=True)


DEFAULT_SETTINGS: dict[str, Any] = {
    "hub_url": f"http://127.0.0.1:{DEFAULT_HUB_PORT}",
    "sign_in": "token",  # "token" | "password"
    "username": "",
    "tool": "llm_complete",
    "provider": "",
    "model": "",
    "system_prompt": "",
    "max_tokens": 0,  # 0: the tool's or model's own limit
    "theme": "light",  # "light" | "dark"
    "font_size": 0,  # points; 0: the system's size
}


class Settings:
    """Small key/value settings in `settings.json`; never a secret (see `credentials`)."""

    def __init__(self, root: Path | None = None) -> None:
        self.path = (root or config_dir()) / "settings.json"
        self.values = dict(DEFAULT_SETTINGS)
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            loaded = {}
        if isinstance(loaded, dict):
            self.values.update({k: v for k, v in loaded.items() if k in DEFAULT_SETTINGS})

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def update(self, **values: Any) -> None:
        self.values.update(values)
        write_private(self.path, json.dumps(self.values, indent=1))
