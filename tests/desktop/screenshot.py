"""Refresh the README's screenshot of the real window: `make desktop-screenshot`.

Runs the app under Xvfb (a real X server, not Qt's offscreen plugin) against a real hub with
the fake providers, has one exchange, and saves the window as it is on screen.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import keyring
from keyring.backends import fail
from PySide6.QtWidgets import QApplication

from desktop.credentials import CredentialVault
from desktop.store import ChatStore, Settings
from desktop.window import MainWindow
from tests.desktop.hub import DesktopHub, start_hub
from tests.fakes.base import Behaviour

ANSWER = (
    "Here is a **Python** function that checks a SealGate hub:\n\n"
    "```python\nimport httpx\n\ndef healthy(url: str) -> bool:\n"
    '    return httpx.get(f"{url}/healthz").status_code == 200\n```\n\n'
    "It answers `True` while the guardian is up."
)


def wait_for(app: QApplication, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("screenshot: the app did not get there in time")
        app.processEvents()
        time.sleep(0.02)


def main(target: Path) -> int:
    if not os.environ.get("DISPLAY"):
        print("screenshot: no X display; run it with xvfb-run (make desktop-screenshot)")
        return 2
    keyring.set_keyring(fail.Keyring())
    hub = start_hub()
    # The app's chats, settings and credential live here for the run and go with it.
    with tempfile.TemporaryDirectory(prefix="sealgate-desktop-shot-") as name:
        try:
            return shoot(hub, Path(name), target)
        finally:
            hub.stop()


def shoot(hub: DesktopHub, home: Path, target: Path) -> int:
    """One exchange in the real window, then the window as it is on screen."""
    app = QApplication(sys.argv[:1])
    window = MainWindow(ChatStore(home), Settings(home), CredentialVault(home))
    window.resize(1100, 700)
    window.show()
    tab = window.connect_tab
    tab.url.setText(hub.url)
    tab.token.setText(hub.token)
    tab.connect_to_hub()
    wait_for(app, lambda: window.chat_tab.client is not None)
    chat = window.chat_tab
    chat.new_chat()
    chat.rename_chat("Health check helper")
    chat.model.setCurrentText("claude-test")
    hub.fake("anthropic").behave(Behaviour(text=ANSWER))
    chat.prompt.setPlainText("Write a function that checks a hub's health.")
    chat.send()
    wait_for(app, lambda: chat.cancel is None)
    chat.new_chat()
    chat.rename_chat("Quarterly report")
    chat.chat_list.setCurrentRow(0)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    image = window.screen().grabWindow(window.winId())
    target.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(target)):
        raise SystemExit(f"screenshot: could not write {target}")
    print(f"screenshot: wrote {target} ({image.width()}x{image.height()})")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/desktop.png")))
