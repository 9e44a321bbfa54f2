"""The Chat tab: many chats with history, a tool/provider/model per message, attachments,
answers streaming in with Stop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor, QFont, QKeySequence, QShortcut, QTextDocument
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop import attachments as files
from desktop import bounds
from desktop.errors import HubError
from desktop.hub import Answer, Cancel, HubClient, HubInfo
from desktop.render import chat_markdown, tool_result_markdown
from desktop.store import Chat, ChatStore, Message, Settings
from desktop.widgets import StatusLine
from desktop.workers import Runner

AUTO = ""  # the hub's choice
DEFAULT_MODEL = "(default)"  # the tool's or provider's own model
CODE_BACKGROUND = QColor("#f3f3f3")
CODE_BACKGROUND_DARK = QColor("#2b2f36")
REDRAW_MS = 50
#: The most `max_tokens` the control offers (the hub clamps to the model's own limit).
MAX_TOKENS_LIMIT = 1_000_000


def code_style(dark: bool = False) -> str:
    """The transcript's default style sheet: fenced code shaded for the theme."""
    colour = CODE_BACKGROUND_DARK if dark else CODE_BACKGROUND
    return f"pre {{ background-color: {colour.name()}; }}"


CODE_STYLE = code_style()


def tool_kind(params: list[str]) -> str:
    """What a tool's provider is, from the parameters the hub lists for it: "search" (it
    takes a `query`), "llm" (a `prompt`), else "none" (db_query: no provider to pick)."""
    if "query" in params:
        return "search"
    if "prompt" in params:
        return "llm"
    return "none"


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
        #: The model and messages of the stream on its way (a stopped answer's bound).
        self.stream_request: tuple[str, list[dict[str, Any]]] | None = None
        #: Told of every request's outcome (None: answered), for the connection indicator.
        self.on_outcome: Callable[[HubError | None], None] | None = None
        self.dark = False
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
        self.system_prompt = QLineEdit(objectName="systemPrompt")
        self.system_prompt.setPlaceholderText("System prompt (empty: the tool's own)")
        self.system_prompt.setText(settings["system_prompt"])
        self.max_tokens = QSpinBox(objectName="maxTokens", minimum=0, maximum=MAX_TOKENS_LIMIT)
        self.max_tokens.setSpecialValueText("default")  # 0: the tool's or model's own limit
        self.max_tokens.setSingleStep(256)
        self.max_tokens.setValue(int(settings["max_tokens"] or 0))
        self.attach_button = QPushButton("Attach…", objectName="attachButton")
        self.attached_list = QListWidget(objectName="attachedList")
        self.attached_list.setFlow(QListWidget.Flow.LeftToRight)
        self.attached_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.attached_list.setMaximumHeight(self.fontMetrics().lineSpacing() * 2 + 8)
        self.attached_list.setToolTip("Files going with the next message; select and Remove")
        self.remove_button = QPushButton("Remove", objectName="removeAttachment", enabled=False)
        self.send_button = QPushButton("Send", objectName="sendButton")
        self.stop_button = QPushButton("Stop", objectName="stopButton", enabled=False)
        self.status = StatusLine("Connect to a hub first (Connect tab).", objectName="chatStatus")

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
        options = QHBoxLayout()
        options.addWidget(QLabel("System"))
        options.addWidget(self.system_prompt, 1)
        options.addWidget(QLabel("Max tokens"))
        options.addWidget(self.max_tokens)
        right_layout.addLayout(options)
        self.prompt.setMaximumHeight(110)
        right_layout.addWidget(self.prompt)
        actions = QHBoxLayout()
        actions.addWidget(self.attach_button)
        actions.addWidget(self.attached_list, 1)
        actions.addWidget(self.remove_button)
        actions.addStretch()
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
        self.delete_button.clicked.connect(lambda: self.delete_chat())
        self.chat_list.currentRowChanged.connect(self._select)
        self.attach_button.clicked.connect(self._pick_files)
        self.remove_button.clicked.connect(lambda: self.remove_attachments())
        self.attached_list.hide()
        self.remove_button.hide()
        self.attached_list.itemSelectionChanged.connect(
            lambda: self.remove_button.setEnabled(bool(self.attached_list.selectedItems()))
        )
        self.send_button.clicked.connect(self.send)
        QShortcut(QKeySequence("Ctrl+Return"), self.prompt, self.send)
        self.stop_button.clicked.connect(self.stop)
        self.tool.currentIndexChanged.connect(self._fill_providers)
        self.provider.currentIndexChanged.connect(self._fill_models)
        self._refresh_list()
        self._set_ready(False)

    # hub -------------------------------------------------------------------------------------
    def set_hub(self, client: HubClient | None, info: HubInfo | None) -> None:
        self.client, self.info = client, info
        self.tool.blockSignals(True)
        self.tool.clear()
        self.tool.blockSignals(False)
        self.provider.clear()
        if info is not None:
            self.tool.blockSignals(True)
            for name in info.tools:
                self.tool.addItem(name, name)
            self.tool.setCurrentIndex(max(0, self.tool.findData(self.settings["tool"])))
            self.tool.blockSignals(False)
            self._fill_providers()
            self.provider.setCurrentIndex(max(0, self.provider.findData(self.settings["provider"])))
            saved = self.settings["model"]
            if saved and self.model.isEnabled():
                self.model.setCurrentText(saved)
            self.status.setText(f"Connected to {client.url if client else '?'}.")
        else:
            self.status.setText("Connect to a hub first (Connect tab).")
        self._set_ready(client is not None)

    def _params_of(self, tool: str) -> list[str]:
        if tool == "llm_complete" and self.info and tool not in self.info.tool_params:
            return ["prompt", "provider", "model", "system", "max_tokens"]
        return (self.info.tool_params.get(tool) if self.info else None) or ["prompt"]

    def _fill_providers(self) -> None:
        """The providers the chosen tool can use: search providers for a search tool, LLM
        providers for an LLM tool, none for a tool that takes no provider (db_query)."""
        tool = self.tool.currentData() or "llm_complete"
        params = self._params_of(tool)
        kind = tool_kind(params)
        self.provider.blockSignals(True)
        self.provider.clear()
        self.provider.addItem("(hub's choice)", AUTO)
        names: list[str] = []
        if self.info is not None and "provider" in params:
            names = self.info.search_providers if kind == "search" else self.info.llm_providers
        for name in names:
            self.provider.addItem(name, name)
        self.provider.setEnabled(bool(names))
        self.provider.blockSignals(False)
        self.system_prompt.setEnabled(tool == "llm_complete" or "system" in params)
        self.max_tokens.setEnabled(tool == "llm_complete" or "max_tokens" in params)
        self._fill_models()

    def _fill_models(self) -> None:
        """The models of the chosen provider; none for a tool that takes no model."""
        tool = self.tool.currentData() or "llm_complete"
        params = self._params_of(tool)
        self.model.clear()
        self.model.addItem(DEFAULT_MODEL)
        takes_model = tool == "llm_complete" or ("model" in params and tool_kind(params) == "llm")
        provider = self.provider.currentData()
        for model in self.info.models if self.info and takes_model else []:
            if provider in (AUTO, None) or model["provider"] == provider:
                self.model.addItem(model["id"])
        self.model.setEnabled(takes_model)

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

    def confirm(self, title: str, question: str) -> bool:
        """Yes or no from the person (a dialog; tests replace it)."""
        answer = QMessageBox.question(self, title, question)
        return answer == QMessageBox.StandardButton.Yes

    def delete_chat(self, confirmed: bool = False) -> None:
        """Delete the chat shown, once the person confirmed (it cannot be undone)."""
        if self.current is None or self.cancel is not None:
            return
        count = len(self.current.messages)
        question = (
            f"Delete “{self.current.title}” and its {count} message(s)? This cannot be undone."
        )
        if not confirmed and not self.confirm("Delete chat", question):
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

    def set_dark(self, dark: bool) -> None:
        """The transcript's code shading for a dark or light theme."""
        self.dark = dark
        self.transcript.document().setDefaultStyleSheet(code_style(dark))
        self._render()

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
                self.status.set_error(f"Not attached: {exc}", True)
        self._show_attached()

    def _show_attached(self) -> None:
        self.attached_list.clear()
        for attachment in self.attached:
            kind = "image" if attachment.image_url is not None else "text"
            self.attached_list.addItem(f"📎 {attachment.name} ({kind})")
        self.remove_button.setEnabled(False)
        self.attached_list.setVisible(bool(self.attached))
        self.remove_button.setVisible(bool(self.attached))

    def remove_attachments(self, rows: list[int] | None = None) -> None:
        """Take the selected attachments (or those at `rows`) off the next message."""
        if rows is None:
            rows = [self.attached_list.row(item) for item in self.attached_list.selectedItems()]
        gone = set(rows)
        self.attached = [a for i, a in enumerate(self.attached) if i not in gone]
        self._show_attached()

    # sending ---------------------------------------------------------------------------------
    def send(self) -> None:
        client, prompt = self.client, self.prompt.toPlainText().strip()
        if client is None or self.cancel is not None or not (prompt or self.attached):
            return
        tool = self.tool.currentData() or "llm_complete"
        images = [a.name for a in self.attached if a.image_url is not None]
        if images and tool != "llm_complete":
            self.status.set_error(
                f"{tool} takes text only, so {', '.join(images)} cannot go with it: remove"
                " the image(s), or choose llm_complete to send them to a model that reads"
                " images. Nothing was sent.",
                True,
            )
            return
        chat = self.current or self.new_chat()
        provider = (self.provider.currentData() or AUTO) if self.provider.isEnabled() else AUTO
        model = self.model.currentText().strip() if self.model.isEnabled() else ""
        model = "" if model == DEFAULT_MODEL else model
        system, max_tokens = self.system_prompt.text().strip(), self.max_tokens.value()
        self.settings.update(
            tool=tool, provider=provider, model=model, system_prompt=system, max_tokens=max_tokens
        )
        attached, self.attached = self.attached, []
        self._show_attached()
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
        self.status.set_error("Waiting for the answer…", False)
        self._render()
        if tool == "llm_complete":
            messages = [*history, {"role": "user", "content": files.content(prompt, attached)}]
            if system:
                messages.insert(0, {"role": "system", "content": system})
            wire_model = self._wire_model(provider, model)
            options = {"max_tokens": max_tokens} if max_tokens else {}
            self.stream_request = (wire_model, messages)
            work = self._stream_work(client, wire_model, messages, self.cancel, options)
            self.runner.start(work, self._answered, self._failed, self._chunk)
        else:
            params = self._tool_params(
                tool, files.as_text(prompt, attached), provider, model, system, max_tokens
            )
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

    def _tool_params(
        self,
        tool: str,
        text: str,
        provider: str,
        model: str,
        system: str = "",
        max_tokens: int = 0,
    ) -> dict[str, Any]:
        accepted = self._params_of(tool)
        key = next((k for k in ("prompt", "query", "sql", "text") if k in accepted), accepted[0])
        params: dict[str, Any] = {key: text}
        if provider and "provider" in accepted:
            params["provider"] = provider
        if model and "model" in accepted and key == "prompt":
            params["model"] = model
        if system and "system" in accepted:
            params["system"] = system
        if max_tokens and "max_tokens" in accepted:
            params["max_tokens"] = max_tokens
        return params

    @staticmethod
    def _stream_work(
        client: HubClient,
        model: str,
        messages: list[dict[str, Any]],
        cancel: Cancel,
        options: dict[str, Any] | None = None,
    ) -> Callable[[Callable[[str], None]], Answer]:
        def work(emit: Callable[[str], None]) -> Answer:
            answer = Answer(text="")
            for item in client.chat_stream(model, messages, cancel, options):
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
            self.status.set_error("Stopping…", False)

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
        self.stream_request = None
        self._set_ready(self.client is not None)
        self.status.set_error(status, message.role == "error")
        self._render()

    def _answered(self, answer: Answer) -> None:
        meta = dict(answer.meta)
        if answer.cancelled:
            meta["stopped"] = True
            if meta.get("cost_usd") is None:
                meta.update(self._stopped_bound(answer.text))
        status = "Stopped." if answer.cancelled else "Done."
        self._finish(Message(role="assistant", text=answer.text, meta=meta), status)
        self._outcome(None)

    def _stopped_bound(self, text: str) -> dict[str, Any]:
        """What a stopped stream can have cost at most, bounded as the hub bounds what it
        bills (`desktop.bounds`: a token per byte of the request and of the text that
        arrived), at the model's prices; nothing where the hub lists no price."""
        if self.stream_request is None or self.info is None:
            return {}
        model, messages = self.stream_request
        name = model.split("/", 1)[1] if "/" in model and model not in self.info.prices else model
        price = self.info.prices.get(name)
        if price is None:
            return {}
        input_bound = bounds.input_token_bound({"model": name, "messages": messages})
        output_bound = bounds.text_token_bound(text)
        bound = (input_bound * price[0] + output_bound * price[1]) / 1_000_000
        return {
            "model": name,
            "input_bound": input_bound,
            "output_bound": output_bound,
            "cost_bound_usd": round(bound, 8),
        }

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
        self._outcome(None)

    def _failed(self, error: HubError) -> None:
        self._finish(
            Message(role="error", text=f"{error.title}: {error}"), f"{error.title}: {error}"
        )
        self._outcome(error)

    def _outcome(self, error: HubError | None) -> None:
        if self.on_outcome is not None:
            self.on_outcome(error)
