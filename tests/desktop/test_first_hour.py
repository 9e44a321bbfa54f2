"""The desktop app's defects found in a person's first hour with it (issue 24), each driven
through the real window against a real hub with fake providers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPalette
from PySide6.QtWidgets import QApplication, QMessageBox

from desktop.hub import USER_AGENT
from desktop.store import Settings
from desktop.window import MainWindow
from protocol.pyfun import DEFAULT_PORT
from tests.desktop.hub import PASSWORD, DesktopHub, start_hub
from tests.desktop.test_app import WAIT, choose, connect, connected, last, send
from tests.fakes.base import Behaviour
from tests.helpers import free_port


def items(widget: Any) -> list[str]:
    return [widget.itemText(i) for i in range(widget.count())]


def image_file(tmp_path: Path) -> Path:
    image = tmp_path / "dot.png"
    picture = QImage(4, 4, QImage.Format.Format_RGB32)
    picture.fill(QColor("red"))
    assert picture.save(str(image))
    return image


def test_a_policy_refusal_is_not_called_a_credential_problem(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    window = make_window()
    connect(qtbot, window, desk_hub.url, desk_hub.chat_only_token)  # role: llm_complete only
    assert window.chat_tab.client is not None, window.connect_tab.status.text()
    choose(window, tool="summarize")
    send(qtbot, window, "A text to summarize")
    status = window.chat_tab.status.text()
    assert status.startswith("Not allowed:"), status
    assert "token" not in status and "sign in" not in status
    assert "policy" in status and last(window).role == "error"


def test_an_image_is_never_dropped_silently_by_a_text_tool(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub, tmp_path: Path
) -> None:
    window = connected(qtbot, make_window(), desk_hub)
    chat = window.chat_tab
    note = tmp_path / "note.txt"
    note.write_text("Quarterly revenue grew")
    chat.attach([note, image_file(tmp_path)])
    for tool in ("summarize", "translate"):
        choose(window, tool=tool)
        chat.prompt.setPlainText("What is in these?")
        before = sum(len(fake.requests) for fake in desk_hub.fakes.values())
        qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
        status = chat.status.text()
        assert "dot.png" in status and "Nothing was sent" in status, status
        assert sum(len(fake.requests) for fake in desk_hub.fakes.values()) == before
        assert [a.name for a in chat.attached] == ["note.txt", "dot.png"]  # still attached
        assert chat.prompt.toPlainText() == "What is in these?"  # and the prompt kept
    chat.remove_attachments([1])
    send(qtbot, window, "What is in this?")
    assert last(window).role == "assistant"
    sent = json.dumps(desk_hub.fake("local").requests[-1].body)  # translate's provider
    assert "Quarterly revenue grew" in sent


def test_a_long_error_neither_pushes_the_layout_nor_cuts_itself_off(
    qtbot: Any, make_window: Callable[[], MainWindow]
) -> None:
    window = make_window()
    window.resize(900, 600)
    tab = window.connect_tab
    qtbot.waitExposed(window)
    height, hint = tab.status.height(), window.minimumSizeHint()
    url = f"http://127.0.0.1:{free_port()}/" + "a-very-long-path-" * 60
    connect(qtbot, window, url, "sg_whatever")
    shown = tab.status.text()
    assert shown.startswith("Hub unreachable:") and url in shown  # every character kept
    assert tab.status.height() == height
    assert window.minimumSizeHint().width() <= max(hint.width(), 900)
    assert window.width() == 900


def test_the_app_says_who_is_signed_in(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    window = make_window()
    connect(qtbot, window, desk_hub.url, username="alice", password=PASSWORD)
    assert "signed in as alice, role user" in window.connect_tab.status.text()
    connect(qtbot, window, desk_hub.url, desk_hub.chat_only_token)  # a token says whose it is
    assert "signed in as carol, role chat_only" in window.connect_tab.status.text()


def test_a_failed_re_login_ends_the_old_session(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub, tmp_path: Path
) -> None:
    window = make_window()
    connect(qtbot, window, desk_hub.url, username="alice", password=PASSWORD)
    assert window.chat_tab.client is not None, window.connect_tab.status.text()
    session = window.chat_tab.client.credential.value
    connect(qtbot, window, desk_hub.url, username="alice", password="not her password")
    assert window.connect_tab.status.text().startswith("Credential refused:")
    assert window.chat_tab.client is None and not window.chat_tab.send_button.isEnabled()
    saved = json.loads((tmp_path / "config" / "credentials.json").read_text())
    assert desk_hub.url not in saved

    def refused() -> bool:
        answer = httpx.post(
            f"{desk_hub.url}/api",
            json={"tool": "list_active_tools", "params": {}},
            headers={"cookie": f"sg_session={session}", "user-agent": USER_AGENT},
        )
        return answer.status_code == 401

    qtbot.waitUntil(refused, timeout=WAIT)


def test_the_provider_and_model_lists_follow_the_tool(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    window = connected(qtbot, make_window(), desk_hub)
    chat = window.chat_tab
    choose(window, tool="web_search")
    assert items(chat.provider) == ["(hub's choice)", "brave", "tavily"]
    assert not chat.model.isEnabled()
    choose(window, tool="web_search", provider="tavily")
    send(qtbot, window, "sealgate desktop")
    assert desk_hub.fake("tavily").requests, "tavily was not asked"
    assert last(window).role == "assistant"
    choose(window, tool="summarize")
    assert {"anthropic", "gemini", "local"} <= set(items(chat.provider))
    assert "brave" not in items(chat.provider) and chat.model.isEnabled()


def test_the_default_hub_url_is_the_port_the_hub_serves_on(tmp_path: Path) -> None:
    assert Settings(tmp_path)["hub_url"] == f"http://127.0.0.1:{DEFAULT_PORT}"


def test_an_attachment_can_be_removed_before_sending(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub, tmp_path: Path
) -> None:
    window = connected(qtbot, make_window(), desk_hub)
    chat = window.chat_tab
    keep, drop = tmp_path / "keep.txt", tmp_path / "drop.txt"
    keep.write_text("kept words")
    drop.write_text("dropped words")
    chat.attach([drop, keep])
    chat.attached_list.item(0).setSelected(True)
    assert chat.remove_button.isEnabled()
    qtbot.mouseClick(chat.remove_button, Qt.MouseButton.LeftButton)
    assert [a.name for a in chat.attached] == ["keep.txt"] and chat.attached_list.count() == 1
    choose(window, provider="local", model="llama-local")
    send(qtbot, window, "Read this")
    sent = json.dumps(desk_hub.fake("local").requests[-1].body)
    assert "kept words" in sent and "dropped words" not in sent


def test_deleting_a_chat_asks_first(
    qtbot: Any,
    make_window: Callable[[], MainWindow],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chat = make_window().chat_tab
    kept = chat.new_chat()
    asked: list[str] = []

    def answer(reply: QMessageBox.StandardButton) -> Callable[..., QMessageBox.StandardButton]:
        def question(parent: Any, title: str, text: str) -> QMessageBox.StandardButton:
            asked.append(text)
            return reply

        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    qtbot.mouseClick(chat.delete_button, Qt.MouseButton.LeftButton)
    assert asked and kept.title in asked[0] and kept in chat.chats
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    qtbot.mouseClick(chat.delete_button, Qt.MouseButton.LeftButton)
    assert kept not in chat.chats and not (chat.store.root / f"{kept.id}.json").exists()


def test_an_empty_password_gets_plain_words(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    window = make_window()
    tab = window.connect_tab
    tab.url.setText(desk_hub.url)
    tab.sign_in.setCurrentIndex(tab.sign_in.findData("password"))
    tab.username.setText("alice")
    qtbot.mouseClick(tab.connect_button, Qt.MouseButton.LeftButton)
    assert tab.status.text() == "Enter your password to sign in."
    tab.username.clear()
    qtbot.mouseClick(tab.connect_button, Qt.MouseButton.LeftButton)
    assert tab.status.text() == "Enter your user name and password to sign in."
    qtbot.wait(300)
    assert "/auth/login" not in window.log_tab.toPlainText() and tab.client is None


@pytest.fixture(scope="module")
def open_hub() -> Iterator[str]:
    """A hub with no user: open mode."""
    hub = start_hub(users=False)
    try:
        yield hub.url
    finally:
        hub.stop()


def test_open_mode_is_shown(
    qtbot: Any, make_window: Callable[[], MainWindow], open_hub: str
) -> None:
    window = make_window()
    connect(qtbot, window, open_hub)
    assert window.chat_tab.client is not None, window.connect_tab.status.text()
    for text in (window.connect_tab.status.text(), window.indicator.text()):
        assert "open mode" in text and "anyone on its machine" in text, text
    assert window.state == "open"


def test_the_system_prompt_and_max_tokens_reach_the_provider(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    window = connected(qtbot, make_window(), desk_hub)
    chat = window.chat_tab
    chat.system_prompt.setText("Answer in one word.")
    chat.max_tokens.setValue(77)
    choose(window, model="claude-test")
    send(qtbot, window, "Hello")
    sent = desk_hub.fake("anthropic").requests[-1].body
    assert sent["system"] == "Answer in one word." and sent["max_tokens"] == 77
    choose(window, tool="summarize")
    assert not chat.system_prompt.isEnabled()  # summarize has its own system prompt
    send(qtbot, window, "A long text")
    sent = desk_hub.fake("anthropic").requests[-1].body
    assert sent["max_tokens"] == 77 and sent["system"] == "Summarize briefly."
    assert chat.settings["system_prompt"] == "Answer in one word."  # kept for next time


# What the original had: a dark theme, a font size, an indicator always in view --------------
def test_the_dark_theme_and_the_font_size_are_applied_and_kept(
    qtbot: Any, make_window: Callable[[], MainWindow]
) -> None:
    window = make_window()
    window.connect_tab.set_status("Hub unreachable: an error in red", False)
    window.theme.setCurrentIndex(window.theme.findData("dark"))
    window.font_size.setValue(17)
    # Every widget follows, the coloured ones too (the error line, the indicator).
    assert window.connect_tab.status.font().pointSize() == 17
    assert window.indicator.font().pointSize() == 17
    error = window.connect_tab.status.palette().color(QPalette.ColorRole.Text)
    assert error.name() == "#d0342c"
    background = QApplication.palette().color(QPalette.ColorRole.Window)
    assert background.lightness() < 80
    chat = window.chat_tab
    assert "#2b2f36" in chat.transcript.document().defaultStyleSheet()
    assert chat.transcript.font().pointSize() == 17 and chat.prompt.font().pointSize() == 17
    assert window.log_tab.font().pointSize() == 17
    window.close()
    again = make_window()  # a restart keeps both
    assert again.theme.currentData() == "dark" and again.font_size.value() == 17
    assert again.chat_tab.transcript.font().pointSize() == 17
    again.theme.setCurrentIndex(again.theme.findData("light"))
    assert QApplication.palette().color(QPalette.ColorRole.Window).lightness() > 150


def test_the_connection_indicator_is_always_in_view(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    window = make_window()
    assert window.indicator.text() == "○ Not connected"
    window.connect_tab.url.setText(desk_hub.url)
    window.connect_tab.token.setText(desk_hub.token)
    window.connect_tab.connect_to_hub()
    assert window.indicator.text() == f"○ Connecting to {desk_hub.url}…"
    qtbot.waitUntil(lambda: window.state == "ok", timeout=WAIT)
    for index in range(window.tabs.count()):
        window.tabs.setCurrentIndex(index)
        assert window.indicator.isVisible()
        assert window.indicator.text() == f"● {desk_hub.url} · signed in as alice, role user"
    assert window.state == "ok"
    window.chat_tab.client.url = f"http://127.0.0.1:{free_port()}"  # the hub goes away
    choose(window, model="claude-test")
    send(qtbot, window, "Hello")
    assert window.state == "down" and "Hub unreachable" in window.indicator.text()
    window.chat_tab.client.url = desk_hub.url
    desk_hub.fake("anthropic").behave(Behaviour())
    send(qtbot, window, "Hello again")
    assert window.state == "ok"
    qtbot.mouseClick(window.connect_tab.forget_button, Qt.MouseButton.LeftButton)
    assert window.indicator.text() == "○ Not connected"


def test_a_stopped_answer_shows_what_it_can_have_cost(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    desk_hub.fake("local").behave(Behaviour(stream_hold=True))
    window = connected(qtbot, make_window(), desk_hub)
    chat = window.chat_tab
    choose(window, provider="local", model="llama-local")  # $2 in / $8 out per 1M tokens
    chat.prompt.setPlainText("Tell me a long story")
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(chat.pending), timeout=WAIT)  # the first words are in
    qtbot.mouseClick(chat.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: chat.cancel is None, timeout=WAIT)
    meta = last(window).meta
    assert meta.get("stopped") is True, last(window)
    assert meta["stopped"] is True and meta["output_bound"] == len(last(window).text)
    expected = (meta["input_bound"] * 2 + meta["output_bound"] * 8) / 1_000_000
    assert meta["cost_bound_usd"] == pytest.approx(expected) and expected > 0
    shown = chat.transcript.toPlainText()
    assert f"at most ${expected:.6f}" in shown and "stopped before the hub's report" in shown
