"""The main window: Connect, Chat and Log tabs around one runner and one log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from PySide6.QtCore import QObject
from PySide6.QtGui import QCloseEvent, QFont
from PySide6.QtWidgets import QMainWindow, QPlainTextEdit, QTabWidget

from desktop import __version__
from desktop.chat_tab import ChatTab
from desktop.connect_tab import ConnectTab
from desktop.credentials import CredentialVault
from desktop.hub import HubClient, HubInfo
from desktop.store import ChatStore, Settings
from desktop.workers import Mailbox, Runner

#: How often request/response lines reach the Log tab.
LOG_FLUSH_MS = 100


class LogBridge(QObject):
    """Request/response lines from any thread, delivered to the GUI thread in batches (a
    Python-side signal emit per line would leak a reference to `True`: see desktop.workers)."""

    def __init__(self, add: Callable[[str, str], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.mailbox: Mailbox[tuple[str, str]] = Mailbox(
            lambda line: add(*line), LOG_FLUSH_MS, self
        )

    def __call__(self, direction: str, text: str) -> None:
        self.mailbox.put((direction, text))


class LogTab(QPlainTextEdit):
    def __init__(self) -> None:
        super().__init__(objectName="log", readOnly=True)
        self.setFont(QFont("monospace"))
        self.setMaximumBlockCount(5000)

    def add(self, direction: str, text: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.appendPlainText(f"{stamp} {direction} {text}")


class MainWindow(QMainWindow):
    def __init__(
        self,
        store: ChatStore | None = None,
        settings: Settings | None = None,
        vault: CredentialVault | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle(f"SealGate Desktop {__version__}")
        self.resize(1100, 720)
        self.log_tab = LogTab()
        self.log_bridge = LogBridge(self.log_tab.add, self)
        self.runner = Runner(self, flush_first=(self.log_bridge.mailbox,))
        settings = settings or Settings()
        self.connect_tab = ConnectTab(
            settings, vault or CredentialVault(), self.runner, self.log_bridge
        )
        self.chat_tab = ChatTab(store or ChatStore(), settings, self.runner)
        self.tabs = QTabWidget(objectName="tabs")
        self.tabs.addTab(self.connect_tab, "Connect")
        self.tabs.addTab(self.chat_tab, "Chat")
        self.tabs.addTab(self.log_tab, "Log")
        self.setCentralWidget(self.tabs)
        self.connect_tab.connected.connect(self._connected)
        self.connect_tab.disconnected.connect(lambda: self.chat_tab.set_hub(None, None))

    def _connected(self, client: HubClient, info: HubInfo) -> None:
        self.chat_tab.set_hub(client, info)
        self.tabs.setCurrentWidget(self.chat_tab)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.chat_tab.stop()
        self.runner.wait(5000)
        super().closeEvent(event)
