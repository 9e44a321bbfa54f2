"""The main window: Connect, Chat and Log tabs around one runner and one log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from PySide6.QtCore import QObject
from PySide6.QtGui import QCloseEvent, QColor, QFont, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QSpinBox,
    QTabWidget,
)

from desktop import __version__
from desktop.chat_tab import ChatTab
from desktop.connect_tab import ConnectTab, who
from desktop.credentials import CredentialVault
from desktop.errors import CredentialRefused, HubError, HubUnreachable
from desktop.hub import HubClient, HubInfo
from desktop.store import ChatStore, Settings
from desktop.widgets import tint
from desktop.workers import Mailbox, Runner

#: How often request/response lines reach the Log tab.
LOG_FLUSH_MS = 100
THEMES = [("light", "Light theme"), ("dark", "Dark theme")]
FONT_SIZES = (7, 32)  # points, the font size control's range
#: The indicator's colour per state (readable on the light and the dark theme).
STATE_COLOURS = {
    "off": "#808080",
    "busy": "#808080",
    "ok": "#2e9e44",
    "open": "#d08700",
    "down": "#d0342c",
}


def dark_palette() -> QPalette:
    """A dark palette for the Fusion style (what Qt's own examples use)."""
    palette = QPalette()
    base, window, text = QColor("#1e2227"), QColor("#2a2e35"), QColor("#e6e6e6")
    for role, colour in (
        (QPalette.ColorRole.Window, window),
        (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base),
        (QPalette.ColorRole.AlternateBase, window),
        (QPalette.ColorRole.ToolTipBase, window),
        (QPalette.ColorRole.ToolTipText, text),
        (QPalette.ColorRole.Text, text),
        (QPalette.ColorRole.Button, window),
        (QPalette.ColorRole.ButtonText, text),
        (QPalette.ColorRole.BrightText, QColor("#ff6b6b")),
        (QPalette.ColorRole.Link, QColor("#6cb4ff")),
        (QPalette.ColorRole.Highlight, QColor("#3d6fb4")),
        (QPalette.ColorRole.HighlightedText, QColor("#ffffff")),
        (QPalette.ColorRole.PlaceholderText, QColor("#9a9a9a")),
    ):
        palette.setColor(role, colour)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7a7a"))
    return palette


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

    def set_point_size(self, size: int) -> None:
        font = QFont("monospace")
        if size:
            font.setPointSize(size)
        self.setFont(font)

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
        self.settings = settings
        self.base_font = QFont(self.font())
        # Always visible, whichever tab is open: the connection, the theme, the font size.
        self.indicator = QLabel(objectName="connectionIndicator")
        self.theme = QComboBox(objectName="themeSelect")
        for key, label in THEMES:
            self.theme.addItem(label, key)
        self.font_size = QSpinBox(objectName="fontSize", minimum=0, maximum=FONT_SIZES[1])
        self.font_size.setSpecialValueText("system font size")
        self.font_size.setSuffix(" pt")
        self.font_size.setToolTip("Font size of the whole window (0: the system's)")
        bar = self.statusBar()
        bar.addWidget(self.indicator, 1)
        bar.addPermanentWidget(self.theme)
        bar.addPermanentWidget(self.font_size)
        self.state = "off"
        self._indicate("off", "Not connected")
        self.connect_tab.connected.connect(self._connected)
        self.connect_tab.disconnected.connect(self._disconnected)
        self.connect_tab.failed.connect(lambda text: self._indicate("down", text))
        self.connect_tab.connecting.connect(
            lambda url: self._indicate("busy", f"Connecting to {url}…")
        )
        self.chat_tab.on_outcome = self._outcome
        self.set_theme(settings["theme"])
        self.set_font_size(int(settings["font_size"] or 0))
        self.theme.currentIndexChanged.connect(lambda _: self.set_theme(self.theme.currentData()))
        self.font_size.valueChanged.connect(self.set_font_size)

    # the connection indicator ----------------------------------------------------------------
    def _indicate(self, state: str, text: str) -> None:
        self.state = state
        self.indicator.setText(f"{'○' if state in ('off', 'busy') else '●'} {text}")
        self.indicator.setToolTip(text)
        tint(self.indicator, STATE_COLOURS[state], QPalette.ColorRole.WindowText)

    def _connected(self, client: HubClient, info: HubInfo) -> None:
        self.chat_tab.set_hub(client, info)
        self.tabs.setCurrentWidget(self.chat_tab)
        self._indicate("open" if info.open_mode else "ok", f"{client.url} · {who(client, info)}")

    def _disconnected(self) -> None:
        self.chat_tab.set_hub(None, None)
        self._indicate("off", "Not connected")

    def _outcome(self, error: HubError | None) -> None:
        """A chat request ended: the indicator says when the hub went away or the
        credential stopped working, and recovers on the next answer."""
        client, info = self.chat_tab.client, self.chat_tab.info
        if isinstance(error, HubUnreachable):
            self._indicate("down", f"Hub unreachable: {client.url if client else ''}")
        elif isinstance(error, CredentialRefused):
            self._indicate("down", "Credential refused: sign in again (Connect tab)")
        elif error is None and client is not None and info is not None:
            self._indicate(
                "open" if info.open_mode else "ok", f"{client.url} · {who(client, info)}"
            )

    # appearance ------------------------------------------------------------------------------
    def set_theme(self, theme: str) -> None:
        """Light or dark, for the whole app; kept in the settings."""
        dark = theme == "dark"
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.setStyle("Fusion")
            app.setPalette(dark_palette() if dark else app.style().standardPalette())
        self.theme.blockSignals(True)
        self.theme.setCurrentIndex(max(0, self.theme.findData("dark" if dark else "light")))
        self.theme.blockSignals(False)
        self.chat_tab.set_dark(dark)
        if self.settings["theme"] != ("dark" if dark else "light"):
            self.settings.update(theme="dark" if dark else "light")

    def set_font_size(self, size: int) -> None:
        """The window's font size in points (0: the system's); kept in the settings."""
        size = 0 if size < FONT_SIZES[0] else min(size, FONT_SIZES[1])
        font = QFont(self.base_font)
        if size:
            font.setPointSize(size)
        self.setFont(font)
        self.log_tab.set_point_size(size)
        self.font_size.blockSignals(True)
        self.font_size.setValue(size)
        self.font_size.blockSignals(False)
        self.chat_tab._render()  # the transcript's HTML carries the font
        if self.settings["font_size"] != size:
            self.settings.update(font_size=size)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.chat_tab.stop()
        self.runner.wait(5000)
        super().closeEvent(event)
