"""The Connect tab: hub URL and credential, a health check, and what the hub offers."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.credentials import CredentialVault
from desktop.errors import HubError
from desktop.hub import Credential, HubClient, HubInfo
from desktop.store import Settings
from desktop.widgets import StatusLine
from desktop.workers import Runner

SIGN_IN = [("token", "API token"), ("password", "User name and password")]


def who(client: HubClient, info: HubInfo) -> str:
    """Who the hub takes this connection for, in words."""
    if info.open_mode:
        return "in open mode: the hub has no users, so anyone on its machine may use it"
    if info.user:
        role = f", role {info.role}" if info.role else ""
        return f"signed in as {info.user}{role}"
    return {"token": "with an API token", "session": "signed in", "none": "with no credential"}[
        client.credential.kind
    ]


class ConnectTab(QWidget):
    """Emits `connected(client, info)` once the hub answered with this credential,
    `disconnected()` when the connection ends (signed out, or a new sign-in that failed),
    `connecting(url)` when an attempt starts and `failed(text)` when it failed."""

    connected = Signal(object, object)
    disconnected = Signal()
    failed = Signal(str)
    connecting = Signal(str)

    def __init__(
        self, settings: Settings, vault: CredentialVault, runner: Runner, log: object
    ) -> None:
        super().__init__()
        self.settings, self.vault, self.runner, self.log = settings, vault, runner, log
        self.client: HubClient | None = None

        self.url = QLineEdit(settings["hub_url"], objectName="hubUrl")
        self.sign_in = QComboBox(objectName="signIn")
        for key, label in SIGN_IN:
            self.sign_in.addItem(label, key)
        self.sign_in.setCurrentIndex(max(0, self.sign_in.findData(settings["sign_in"])))
        self.token = QLineEdit(objectName="token", echoMode=QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("sg_… (empty: use the saved credential)")
        self.username = QLineEdit(settings["username"], objectName="username")
        self.password = QLineEdit(objectName="password", echoMode=QLineEdit.EchoMode.Password)
        self.connect_button = QPushButton("Connect", objectName="connectButton")
        self.health_button = QPushButton("Check health", objectName="healthButton")
        self.forget_button = QPushButton("Sign out and forget", objectName="forgetButton")
        self.status = StatusLine("Not connected.", objectName="connectStatus")
        self.vault_note = QLabel(vault.where(), objectName="vaultNote", wordWrap=True)
        self.tools = QListWidget(objectName="toolList")
        self.providers = QListWidget(objectName="providerList")
        self.models = QListWidget(objectName="modelList")

        form = QFormLayout()
        form.addRow("Hub URL", self.url)
        form.addRow("Sign in with", self.sign_in)
        form.addRow("API token", self.token)
        form.addRow("User name", self.username)
        form.addRow("Password", self.password)
        buttons = QHBoxLayout()
        buttons.addWidget(self.connect_button)
        buttons.addWidget(self.health_button)
        buttons.addWidget(self.forget_button)
        buttons.addStretch()
        lists = QHBoxLayout()
        for title, widget in (
            ("Tools", self.tools),
            ("Providers", self.providers),
            ("Models", self.models),
        ):
            box = QGroupBox(title)
            QVBoxLayout(box).addWidget(widget)
            lists.addWidget(box)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.vault_note)
        layout.addLayout(lists, 1)

        self.sign_in.currentIndexChanged.connect(self._mode_changed)
        self.connect_button.clicked.connect(self.connect_to_hub)
        self.forget_button.clicked.connect(self.forget)
        self.health_button.clicked.connect(self.check_health)
        self._mode_changed()

    def _mode_changed(self) -> None:
        token_mode = self.sign_in.currentData() == "token"
        self.token.setEnabled(token_mode)
        self.username.setEnabled(not token_mode)
        self.password.setEnabled(not token_mode)

    def set_status(self, text: str, ok: bool) -> None:
        self.status.set_error(text, not ok)

    def _drop_connection(self, end_session: bool) -> None:
        """No connection from here on: the chat stops using it. `end_session`: the person
        is signing in anew, so the old session ends at the hub and is forgotten, whatever
        the new attempt gives (a failed re-login never leaves the old session live)."""
        old, self.client = self.client, None
        if old is None:
            return
        self.disconnected.emit()
        if end_session and old.credential.kind == "session":
            self.vault.forget(old.url)
            self.runner.start(lambda emit: old.logout(), lambda _: old.close(), lambda _: None)
        else:
            old.close()

    def connect_to_hub(self) -> None:
        """Sign in if asked, then load health, tools, providers and models off the GUI thread."""
        url = self.url.text().strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            self.set_status("Enter the hub's URL, starting with http:// or https://", False)
            return
        mode = self.sign_in.currentData()
        username, password = self.username.text().strip(), self.password.text()
        self.password.clear()  # never kept, not even in the widget
        token = self.token.text().strip()
        stored = self.vault.load(url)
        if mode == "password" and (password or stored is None or stored.kind != "session"):
            missing = [
                what
                for what, value in (("user name", username), ("password", password))
                if not value
            ]
            if missing:
                self.set_status(f"Enter your {' and '.join(missing)} to sign in.", False)
                return
        self._drop_connection(end_session=bool(password or token))
        self.settings.update(hub_url=url, sign_in=mode, username=username)
        credential = Credential(kind="none")
        if mode == "token" and token:
            credential = Credential(kind="token", value=token)
        elif mode == "token" and stored is not None and stored.kind == "token":
            credential = stored
        elif mode == "password" and not password and stored is not None:
            credential = stored  # a session kept from an earlier sign-in
        client = HubClient(url, credential, log=self.log)

        def work(emit: object) -> HubInfo:
            if mode == "password" and password:
                client.login(username, password)
            return client.info()

        self.connect_button.setEnabled(False)
        self.set_status(f"Connecting to {url}…", True)
        self.connecting.emit(url)
        self.runner.start(work, lambda info: self._connected(client, info), self._connect_failed)

    def _connected(self, client: HubClient, info: HubInfo) -> None:
        self.connect_button.setEnabled(True)
        self.token.clear()
        if client.credential.kind != "none":
            self.vault.save(client.url, client.credential)
        if self.client is not None:
            self.client.close()
        self.client = client
        guardian = info.health.get("guardian") or {}
        self.set_status(
            f"Connected to {client.url}, {who(client, info)} ({self._how(client)}); guardian "
            f"{guardian.get('status', 'ok')}, up {guardian.get('uptime_s', '?')} s.",
            True,
        )
        self.vault_note.setText(self.vault.where())
        self.tools.clear()
        self.tools.addItems(info.tools)
        self.providers.clear()
        self.providers.addItems(
            info.llm_providers + [f"{p} (search)" for p in info.search_providers]
        )
        self.models.clear()
        self.models.addItems([f"{m['id']}  ({m['provider']})" for m in info.models])
        self.connected.emit(client, info)

    @staticmethod
    def _how(client: HubClient) -> str:
        return {"token": "API token", "session": "signed in", "none": "open hub, no credential"}[
            client.credential.kind
        ]

    def _failed(self, error: HubError) -> None:
        self.connect_button.setEnabled(True)
        self.health_button.setEnabled(True)
        self.set_status(f"{error.title}: {error}", False)

    def _connect_failed(self, error: HubError) -> None:
        self._failed(error)
        self.failed.emit(f"{error.title}: {error}")

    def check_health(self) -> None:
        """`/healthz`, which needs no credential: is the hub up, and its guardian?"""
        url = self.url.text().strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            self.set_status("Enter the hub's URL, starting with http:// or https://", False)
            return
        client = HubClient(url, Credential(kind="none"), log=self.log)

        def done(health: dict[str, object]) -> None:
            client.close()
            self.health_button.setEnabled(True)
            uptime = health.get("guardian_uptime_s", "?")
            self.set_status(f"Hub at {url} is healthy; its guardian is up {uptime} s.", True)

        def failed(error: HubError) -> None:
            client.close()
            self._failed(error)

        self.health_button.setEnabled(False)
        self.runner.start(lambda emit: client.healthz(), done, failed)

    def forget(self) -> None:
        url = self.url.text().strip().rstrip("/")
        self.vault.forget(url)
        if self.client is None:
            self.disconnected.emit()  # a failed attempt's state ends here too
        self._drop_connection(end_session=True)
        self.set_status("Signed out; the saved credential is forgotten.", True)
