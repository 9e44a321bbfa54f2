"""The Chat tab: many chats with history, a tool/provider/model per message, attachments,
answers streaming in with Stop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor, QFont, QKeySequence, QShortcut, QTextDocument
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop import attachments as files
from desktop.errors import HubError
from desktop.hub import Answer, Cancel, HubClient, HubInfo
from desktop.render import chat_markdown, tool_result_markdown
from desktop.store import Chat, ChatStore, Message, Settings
from desktop.workers import Runner

AUTO = ""  # the hub's choice
DEFAULT_MODEL = "(default)"  # the tool's or provider's own model
CODE_BACKGROUND = QColor("#f3f3f3")
CODE_STYLE = f"pre {{ background-color: {CODE_BACKGROUND.name()}; }}"
REDRAW_MS = 50


def transcript_html(markdown: str, font: QFont) -> str:
    """Markdown as Qt's HTML, for a view whose default style sheet (`CODE_STYLE`) shades
    fenced code, which Qt's Markdown reader marks but draws like text. Shading by editing
    block formats after `setMarkdown()` left the view's layout stale (a long chat's newest
    messages drawn as dots, no scrolling to the end) and cost a PySide call per code block;
    the view now gets the whole content in one `setHtml()`."""
    document = QTextDocument()
    document.setDefaultFont(font)
    document.setMarkdown(markdown)
    return document.toHtml()


class ChatTab(QWidget):
    def __init__(self, store: ChatStore, settings: Settings, runner: Runner) -> None:
        super().__init__()
        self.store, self.settings, self.runner = store, settings, runner
        self.client: HubClient | None = None
        self.info: HubInfo | None = None
        self.chats: list[Chat] = store.load_all()
        self.current: Chat | None = None
        self.attached: list[files.Attachment] = []
        self.pending: str | None = None
        self.cancel: Cancel | None = None
        self.sending: Chat | None = None  # the chat whose answer is on its way
        self.redraw = QTimer(self, singleShot=True, interval=REDRAW_MS)
        self.redraw.timeout.connect(self._render)

        self.chat_list = QListWidget(objectName="chatList")
        self.new_button = QPushButton("New", objectName="newChat")
        self.rename_button = QPushButton("Rename", objectName="renameChat")
        self.delete_button = QPushButton("Delete", objectName="deleteChat")
        self.transcript = QTextBrowser(objectName="transcript", openExternalLinks=True)
        self.transcript.document().setDefaultStyleSheet(CODE_STYLE)
        self.follow_end = True  # keep the newest message in view while the layout settles
        bar = self.transcript.verticalScrollBar()
        bar.rangeChanged.connect(self._keep_end_in_view)
        bar.valueChanged.connect(self._scrolled)
        self.tool = QComboBox(objectName="toolSelect")
        self.provider = QComboBox(objectName="providerSelect")
        self.model = QComboBox(objectName="modelSelect", editable=True)
        self.prompt = QPlainTextEdit(objectName="prompt")
        self.prompt.setPlaceholderText("Ask something… (Ctrl+Enter sends)")
        self.attach_button = QPushButton("Attach…", objectName="attachButton")
        self.attached_label = QLabel("", objectName="attachedLabel")
        self.send_button = QPushButton("Send", objectName="sendButton")
        self.stop_button = QPushButton("Stop", objectName="stopButton", enabled=False)
        self.status = QLabel("Connect to a hub first (Connect tab).", objectName="chatStatus")
        self.status.setWordWrap(True)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.chat_list, 1)
        row = QHBoxLayout()
        for button in (self.new_button, self.rename_button, self.delete_button):
            row.addWidget(button)
        left_layout.addLayout(row)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(self.transcript, 1)
        selectors = QHBoxLayout()
        for label, widget in (
            ("Tool", self.tool),
            ("Provider", self.provider),
            ("Model", self.model),
        ):
            selectors.addWidget(QLabel(label))
            selectors.addWidget(widget, 1)
        right_layout.addLayout(selectors)
        self.prompt.setMaximumHeight(110)
        right_layout.addWidget(self.prompt)
        actions = QHBoxLayout()
        actions.addWidget(self.attach_button)
        actions.addWidget(self.attached_label, 1)
        actions.addWidget(self.send_button)
        actions.addWidget(self.stop_button)
        right_layout.addLayout(actions)
        right_layout.addWidget(self.status)

        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 3)
        QVBoxLayout(self).addWidget(splitter)

        self.new_button.clicked.connect(self.new_chat)
        self.rename_button.clicked.connect(self.rename_chat)
        self.delete_button.clicked.connect(self.delete_chat)
        self.chat_list.currentRowChanged.connect(self._select)
        self.attach_button.clicked.connect(self._pick_files)
        self.send_button.clicked.connect(self.send)
        QShortcut(QKeySequence("Ctrl+Return"), self.prompt, self.send)
        self.stop_button.clicked.connect(self.stop)
        self.provider.currentIndexChanged.connect(self._fill_models)
        self._refresh_list()
        self._set_ready(False)

    # hub -------------------------------------------------------------------------------------
    def set_hub(self, client: HubClient | None, info: HubInfo | None) -> None:
        self.client, self.info = client, info
        self.tool.clear()
        self.provider.clear()
        if info is not None:
            for name in info.tools:
                self.tool.addItem(name, name)
            self.tool.setCurrentIndex(max(0, self.tool.findData(self.settings["tool"])))
            self.provider.addItem("(hub's choice)", AUTO)
            for name in info.llm_providers:
                self.provider.addItem(name, name)
            self.provider.setCurrentIndex(max(0, self.provider.findData(self.settings["provider"])))
            self._fill_models()
            saved = self.settings["model"]
            if saved:
                self.model.setCurrentText(saved)
            self.status.setText(f"Connected to {client.url if client else '?'}.")
        else:
            self.status.setText("Connect to a hub first (Connect tab).")
        self._set_ready(client is not None)

    def _fill_models(self) -> None:
        self.model.clear()
        self.model.addItem(DEFAULT_MODEL)
        provider = self.provider.currentData()
        for model in self.info.models if self.info else []:
            if provider in (AUTO, None) or model["provider"] == provider:
                self.model.addItem(model["id"])

    def _set_ready(self, ready: bool) -> None:
        streaming = self.cancel is not None
        self.send_button.setEnabled(ready and not streaming)
        self.stop_button.setEnabled(streaming)

    # chats -----------------------------------------------------------------------------------
    def _refresh_list(self) -> None:
        self.chat_list.blockSignals(True)
        self.chat_list.clear()
        for chat in self.chats:
            self.chat_list.addItem(QListWidgetItem(chat.title))
        self.chat_list.blockSignals(False)
        if self.current in self.chats:
            self.chat_list.setCurrentRow(self.chats.index(self.current))
        elif self.chats:
            self.chat_list.setCurrentRow(len(self.chats) - 1)
        else:
            self.current = None
            self._render()

    def _select(self, row: int) -> None:
        self.current = self.chats[row] if 0 <= row < len(self.chats) else None
        self._render()

    def new_chat(self) -> Chat:
        chat = Chat(title=f"Chat {len(self.chats) + 1}")
        self.chats.append(chat)
        self.current = chat
        self.store.save(chat)
        self._refresh_list()
        return chat

    def rename_chat(self, title: str | None = None) -> None:
        if self.current is None:
            return
        if not isinstance(title, str):
            title, ok = QInputDialog.getText(self, "Rename chat", "Title", text=self.current.title)
            if not ok:
                return
        self.current.title = title.strip() or self.current.title
        self.store.save(self.current)
        self._refresh_list()

    def delete_chat(self) -> None:
        if self.current is None or self.cancel is not None:
            return
        self.store.delete(self.current)
        self.chats.remove(self.current)
        self.current = None
        self._refresh_list()

    def _render(self) -> None:
        pending = self.pending if self.current is self.sending else None
        markdown = chat_markdown(self.current, pending)
        self.follow_end = True
        self.transcript.setHtml(transcript_html(markdown, self.transcript.font()))
        bar = self.transcript.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _keep_end_in_view(self, _minimum: int, maximum: int) -> None:
        """The view lays a long document out after `setHtml()` returns: its height, and so
        the scroll range, settles later; stay at the end unless the reader scrolled away."""
        if self.follow_end:
            self.transcript.verticalScrollBar().setValue(maximum)

    def _scrolled(self, value: int) -> None:
        self.follow_end = value >= self.transcript.verticalScrollBar().maximum()

    # attachments -----------------------------------------------------------------------------
    def _pick_files(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(self, "Attach files", "", files.FILTER)
        self.attach([Path(n) for n in names])

    def attach(self, paths: list[Path]) -> None:
        for path in paths:
            try:
                self.attached.append(files.load(path))
            except files.AttachmentError as exc:
                self.status.setText(f"Not attached: {exc}")
        self.attached_label.setText(", ".join(a.name for a in self.attached))

    # sending ---------------------------------------------------------------------------------
    def send(self) -> None:
        client, prompt = self.client, self.prompt.toPlainText().strip()
        if client is None or self.cancel is not None or not (prompt or self.attached):
            return
        chat = self.current or self.new_chat()
        tool = self.tool.currentData() or "llm_complete"
        provider, model = self.provider.currentData() or AUTO, self.model.currentText().strip()
        model = "" if model == DEFAULT_MODEL else model
        self.settings.update(tool=tool, provider=provider, model=model)
        attached, self.attached = self.attached, []
        self.attached_label.clear()
        self.prompt.clear()
        history = self._history(chat)
        chat.messages.append(
            Message(role="user", text=prompt, tool=tool, attachments=[a.name for a in attached])
        )
        if chat.title.startswith("Chat ") and len(chat.messages) == 1 and prompt:
            chat.title = prompt.splitlines()[0][:40]
            self._refresh_list()
        self.store.save(chat)
        self.cancel = Cancel()
        self.sending = chat
        self.pending = ""
        self._set_ready(True)
        self.status.setText("Waiting for the answer…")
        self._render()
        if tool == "llm_complete":
            messages = [*history, {"role": "user", "content": files.content(prompt, attached)}]
            wire_model = self._wire_model(provider, model)
            work = self._stream_work(client, wire_model, messages, self.cancel)
            self.runner.start(work, self._answered, self._failed, self._chunk)
        else:
            params = self._tool_params(tool, files.as_text(prompt, attached), provider, model)
            self.runner.start(
                lambda emit: client.tool(tool, params), self._tool_answered, self._failed
            )

    @staticmethod
    def _history(chat: Chat) -> list[dict[str, Any]]:
        """Earlier turns of plain chat (tools and errors are not part of the conversation)."""
        out: list[dict[str, Any]] = []
        for m in chat.messages:
            if m.role == "user" and m.tool == "llm_complete":
                if out and out[-1]["role"] == "user":
                    out.pop()  # a question that got no answer (an error) is dropped
                out.append({"role": "user", "content": m.text})
            elif m.role == "assistant" and m.meta.get("tool", "llm_complete") == "llm_complete":
                if out and out[-1]["role"] == "user":
                    out.append({"role": "assistant", "content": m.text})
        if out and out[-1]["role"] == "user":
            out.pop()  # an unanswered question
        return out

    def _wire_model(self, provider: str, model: str) -> str:
        """`/v1` needs a model: the chosen one, else the first the hub lists (for the chosen
        provider); `provider/model` pins the provider."""
        if not model and self.info:
            listed = [m["id"] for m in self.info.models if provider in (AUTO, m["provider"])]
            model = listed[0] if listed else ""
        if provider and not model.startswith(provider + "/"):
            return f"{provider}/{model}" if model else provider
        return model

    def _tool_params(self, tool: str, text: str, provider: str, model: str) -> dict[str, Any]:
        accepted = (self.info.tool_params.get(tool) if self.info else None) or ["prompt"]
        key = next((k for k in ("prompt", "query", "sql", "text") if k in accepted), accepted[0])
        params: dict[str, Any] = {key: text}
        if provider and "provider" in accepted and key == "prompt":
            params["provider"] = provider
        if model and "model" in accepted:
            params["model"] = model
        return params

    @staticmethod
    def _stream_work(
        client: HubClient, model: str, messages: list[dict[str, Any]], cancel: Cancel
    ) -> Callable[[Callable[[str], None]], Answer]:
        def work(emit: Callable[[str], None]) -> Answer:
            answer = Answer(text="")
            for item in client.chat_stream(model, messages, cancel):
                if isinstance(item, Answer):
                    answer = item
                else:
                    emit(item)
            return answer

        return work

    def _chunk(self, text: str) -> None:
        """Text as it arrives; the transcript is redrawn at most every `REDRAW_MS`, since
        re-rendering a long chat per token would make the window lag behind the stream."""
        if self.pending is not None:
            self.pending += text
            if not self.redraw.isActive():
                self.redraw.start()

    def stop(self) -> None:
        """Cancel the running request: the hub aborts it upstream and bills what was used."""
        if self.cancel is not None:
            self.cancel()
            self.status.setText("Stopping…")

    def _finish(self, message: Message, status: str) -> None:
        """The answer (or error) goes to the chat that asked, even if another is shown now."""
        self.redraw.stop()
        chat, self.sending = self.sending, None
        if chat is not None:
            chat.messages.append(message)
            if chat in self.chats:
                self.store.save(chat)
        self.pending = None
        self.cancel = None
        self._set_ready(self.client is not None)
        self.status.setText(status)
        self._render()

    def _answered(self, answer: Answer) -> None:
        meta = dict(answer.meta)
        if answer.cancelled:
            meta["stopped"] = True
        status = "Stopped." if answer.cancelled else "Done."
        self._finish(Message(role="assistant", text=answer.text, meta=meta), status)

    def _tool_answered(self, result: dict[str, Any]) -> None:
        usage = result.get("usage") or {}
        meta = {
            "tool": self.sending.messages[-1].tool
            if self.sending and self.sending.messages
            else "",
            "model": result.get("model"),
            "provider": result.get("provider"),
            "fallback_path": result.get("fallback_path") or [],
            "cost_usd": result.get("cost_usd"),
        }
        if usage:
            meta.update(
                input_tokens=usage.get("input_tokens"), output_tokens=usage.get("output_tokens")
            )
        meta = {k: v for k, v in meta.items() if v not in (None, [])}
        self._finish(
            Message(role="assistant", text=tool_result_markdown(result), meta=meta), "Done."
        )

    def _failed(self, error: HubError) -> None:
        self._finish(
            Message(role="error", text=f"{error.title}: {error}"), f"{error.title}: {error}"
        )
