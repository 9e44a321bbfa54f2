"""The desktop app against a real hub with fake providers, driven like a user drives it."""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage

from desktop.hub import USER_AGENT
from desktop.window import MainWindow
from tests.desktop.hub import PASSWORD, DesktopHub, minimal_pdf
from tests.fakes.base import Behaviour
from tests.helpers import free_port

WAIT = 15_000


def connect(qtbot: Any, window: MainWindow, url: str, token: str = "", **login: str) -> None:
    tab = window.connect_tab
    tab.url.setText(url)
    if login:
        tab.sign_in.setCurrentIndex(tab.sign_in.findData("password"))
        tab.username.setText(login["username"])
        tab.password.setText(login["password"])
    else:
        tab.sign_in.setCurrentIndex(tab.sign_in.findData("token"))
        tab.token.setText(token)
    qtbot.mouseClick(tab.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.connect_button.isEnabled(), timeout=WAIT)


def connected(qtbot: Any, window: MainWindow, hub: DesktopHub) -> MainWindow:
    connect(qtbot, window, hub.url, hub.token)
    assert window.chat_tab.client is not None, window.connect_tab.status.text()
    return window


def choose(
    window: MainWindow, tool: str = "llm_complete", provider: str = "", model: str = ""
) -> None:
    chat = window.chat_tab
    chat.tool.setCurrentIndex(chat.tool.findData(tool))
    chat.provider.setCurrentIndex(chat.provider.findData(provider))
    if model:
        chat.model.setCurrentText(model)


def send(qtbot: Any, window: MainWindow, prompt: str) -> None:
    chat = window.chat_tab
    chat.prompt.setPlainText(prompt)
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: chat.cancel is None, timeout=WAIT)


def last(window: MainWindow) -> Any:
    assert window.chat_tab.current is not None
    return window.chat_tab.current.messages[-1]


def test_connect_with_a_token_loads_tools_providers_and_models(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub, tmp_path: Path
) -> None:
    window = connected(qtbot, make_window(), desk_hub)
    tab = window.connect_tab
    assert "Connected to" in tab.status.text() and "API token" in tab.status.text()
    items = lambda widget: [widget.item(i).text() for i in range(widget.count())]  # noqa: E731
    assert {"llm_complete", "summarize", "translate", "web_search"} <= set(items(tab.tools))
    assert "health_check" not in items(tab.tools)
    assert {"anthropic", "gemini", "local", "brave (search)"} <= set(items(tab.providers))
    assert "claude-test  (anthropic)" in items(tab.models)
    chat = window.chat_tab
    assert chat.tool.findData("summarize") >= 0 and chat.model.findText("claude-test") >= 0
    # The token went to the 0600 fallback file (no keyring here), announced as such.
    assert "No system keyring found" in tab.vault_note.text()
    stored = tmp_path / "config" / "credentials.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert json.loads(stored.read_text())[desk_hub.url] == {
        "kind": "token",
        "value": desk_hub.token,
    }
    log = window.log_tab.toPlainText()
    assert "> POST /api" in log and "< 200 /v1/models" in log and desk_hub.token not in log


def test_connect_with_a_password_keeps_the_session_never_the_password(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub, tmp_path: Path
) -> None:
    window = make_window()
    connect(qtbot, window, desk_hub.url, username="alice", password=PASSWORD)
    assert window.chat_tab.client is not None, window.connect_tab.status.text()
    assert "signed in" in window.connect_tab.status.text()
    assert window.connect_tab.password.text() == ""
    saved_path = tmp_path / "config" / "credentials.json"
    saved = saved_path.read_text()
    assert json.loads(saved)[desk_hub.url]["kind"] == "session"
    for path in (tmp_path / "config").iterdir():
        assert PASSWORD not in path.read_text()
    assert PASSWORD not in window.log_tab.toPlainText()
    # A restart signs in with the kept session, no password typed.
    again = make_window()
    again.connect_tab.sign_in.setCurrentIndex(again.connect_tab.sign_in.findData("password"))
    qtbot.mouseClick(again.connect_tab.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: again.chat_tab.client is not None, timeout=WAIT)
    choose(again, model="claude-test")
    send(qtbot, again, "Hello")
    assert last(again).text == desk_hub.fake("anthropic").reply_text
    # Sign out: the hub ends the session and the app forgets it.
    session = again.chat_tab.client.credential.value  # type: ignore[union-attr]
    qtbot.mouseClick(again.connect_tab.forget_button, Qt.MouseButton.LeftButton)
    assert again.chat_tab.client is None and not again.chat_tab.send_button.isEnabled()
    assert desk_hub.url not in json.loads(saved_path.read_text())

    def refused() -> bool:
        answer = httpx.post(
            f"{desk_hub.url}/api",
            json={"tool": "list_active_tools", "params": {}},
            headers={"cookie": f"sg_session={session}", "user-agent": USER_AGENT},
        )
        return answer.status_code == 401

    qtbot.waitUntil(refused, timeout=WAIT)


def test_a_prompt_streams_into_the_chat_with_the_hubs_report(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    # Chunks reach the GUI in batches (desktop.workers.DRAIN_MS): a trickle keeps them apart.
    desk_hub.fake("anthropic").behave(Behaviour(trickle_s=0.1))
    window = connected(qtbot, make_window(), desk_hub)
    chat = window.chat_tab
    seen: list[str] = []
    original = chat._chunk
    chat._chunk = lambda text: (seen.append(text), original(text))  # type: ignore[method-assign]
    choose(window, model="claude-test")
    send(qtbot, window, "Hello")
    reply = desk_hub.fake("anthropic").reply_text
    assert len(seen) > 3 and "".join(seen) == reply  # in pieces, as generated
    answer = last(window)
    assert answer.role == "assistant" and answer.text == reply
    assert answer.meta["provider"] == "anthropic" and answer.meta["model"] == "claude-test"
    assert answer.meta["input_tokens"] == 12 and answer.meta["output_tokens"] == 7
    shown = chat.transcript.toPlainText()
    assert "Claude says hello to you" in shown  # Markdown rendered: no asterisks left
    assert (
        "provider anthropic" in shown and "12 in / 7 out tokens" in shown and "$0.000141" in shown
    )
    sent = desk_hub.fake("anthropic").requests[-1].body
    assert sent["stream"] is True and "Hello" in json.dumps(sent["messages"][-1])


def test_the_fallback_path_is_shown(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    desk_hub.fake("anthropic").behave(Behaviour(status=503), Behaviour(status=503))
    window = connected(qtbot, make_window(), desk_hub)
    choose(window, model="claude-test")
    send(qtbot, window, "Hello")
    assert last(window).meta["provider"] == "gemini"
    assert "fallback anthropic" in window.chat_tab.transcript.toPlainText()


def test_stop_cancels_the_request_at_the_provider(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    local = desk_hub.fake("local")
    local.behave(Behaviour(stream_hold=True))
    before = local.disconnects
    window = connected(qtbot, make_window(), desk_hub)
    chat = window.chat_tab
    choose(window, provider="local", model="llama-local")
    chat.prompt.setPlainText("Tell me a long story")
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(chat.pending), timeout=WAIT)  # the first words are in
    qtbot.waitUntil(lambda: "streaming…\nLocal" in chat.transcript.toPlainText(), timeout=WAIT)
    assert chat.stop_button.isEnabled() and not chat.send_button.isEnabled()
    qtbot.mouseClick(chat.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: chat.cancel is None, timeout=WAIT)
    answer = last(window)
    assert answer.meta.get("stopped") is True and answer.text == "Local "
    assert chat.status.text() == "Stopped."
    qtbot.waitUntil(lambda: local.disconnects > before, timeout=WAIT)  # upstream cancelled
    assert chat.send_button.isEnabled()


def test_a_pdf_a_csv_and_an_image_reach_the_provider_in_the_right_shape(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub, tmp_path: Path
) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(minimal_pdf("Quarterly revenue grew"))
    table = tmp_path / "sales.csv"
    with table.open("w", newline="") as handle:
        csv.writer(handle).writerows([["region", "sales"], ["north", "42"]])
    image = tmp_path / "dot.png"
    picture = QImage(4, 4, QImage.Format.Format_RGB32)
    picture.fill(QColor("red"))
    assert picture.save(str(image))
    window = connected(qtbot, make_window(), desk_hub)
    window.chat_tab.attach([pdf, table, image])
    shown = window.chat_tab.attached_list
    assert [shown.item(i).text() for i in range(shown.count())] == [
        "📎 report.pdf (text)",
        "📎 sales.csv (text)",
        "📎 dot.png (image)",
    ]
    choose(window, provider="local", model="llama-local")  # OpenAI-compatible: takes images
    send(qtbot, window, "What do these say?")
    parts = desk_hub.fake("local").requests[-1].body["messages"][-1]["content"]
    assert parts[0] == {"type": "text", "text": "What do these say?"}
    assert parts[1]["type"] == "text" and "Quarterly revenue grew" in parts[1]["text"]
    assert parts[2]["type"] == "text" and "region,sales" in parts[2]["text"]
    assert "north,42" in parts[2]["text"]
    url = parts[3]["image_url"]["url"]
    assert parts[3]["type"] == "image_url" and url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == image.read_bytes()
    assert last(window).text == desk_hub.fake("local").reply_text
    assert "📎 report.pdf" in window.chat_tab.transcript.toPlainText()


def test_config_tools_and_search_go_over_the_json_api(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    window = connected(qtbot, make_window(), desk_hub)
    choose(window, tool="summarize")
    send(qtbot, window, "A long text to summarize")
    answer = last(window)
    assert answer.text == desk_hub.fake("anthropic").reply_text
    assert answer.meta["provider"] == "anthropic" and answer.meta["tool"] == "summarize"
    sent = desk_hub.fake("anthropic").requests[-1].body
    assert sent["system"] == "Summarize briefly."
    choose(window, tool="web_search")
    send(qtbot, window, "sealgate desktop")
    assert "Brave result 0" in last(window).text
    assert desk_hub.fake("brave").requests[-1].query["q"] == "sealgate desktop"
    assert "> POST /api" in window.log_tab.toPlainText()


def test_history_survives_a_restart_with_new_rename_and_delete(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    window = connected(qtbot, make_window(), desk_hub)
    chat = window.chat_tab
    choose(window, model="claude-test")
    send(qtbot, window, "First question")
    chat.rename_chat("Kept chat")
    chat.new_chat()
    send(qtbot, window, "Second chat")
    chat.new_chat()
    chat.delete_chat(confirmed=True)
    window.close()
    again = make_window()
    titles = [
        again.chat_tab.chat_list.item(i).text() for i in range(again.chat_tab.chat_list.count())
    ]
    assert titles == ["Kept chat", "Second chat"]
    again.chat_tab.chat_list.setCurrentRow(0)
    kept = again.chat_tab.current
    assert kept is not None and kept.messages[0].text == "First question"
    assert kept.messages[1].meta["provider"] == "anthropic"
    assert "First question" in again.chat_tab.transcript.toPlainText()
    assert again.connect_tab.url.text() == desk_hub.url  # settings kept too
    assert again.chat_tab.settings["model"] == "claude-test"


def test_an_unreachable_hub_says_so(qtbot: Any, make_window: Callable[[], MainWindow]) -> None:
    window = make_window()
    connect(qtbot, window, f"http://127.0.0.1:{free_port()}", "sg_whatever")
    assert window.connect_tab.status.text().startswith("Hub unreachable:")
    assert window.chat_tab.client is None
    check_health(qtbot, window)
    assert window.connect_tab.status.text().startswith("Hub unreachable:")


def check_health(qtbot: Any, window: MainWindow) -> None:
    tab = window.connect_tab
    qtbot.mouseClick(tab.health_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.health_button.isEnabled(), timeout=WAIT)


def test_the_health_check_needs_no_credential(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    window = make_window()
    window.connect_tab.url.setText(desk_hub.url)
    check_health(qtbot, window)
    assert "is healthy; its guardian is up" in window.connect_tab.status.text()
    assert "< 200 /healthz" in window.log_tab.toPlainText()


def test_a_refused_credential_says_so(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    window = make_window()
    connect(qtbot, window, desk_hub.url, "sg_not-a-real-token")
    assert window.connect_tab.status.text().startswith("Credential refused:")
    connect(qtbot, window, desk_hub.url, username="alice", password="wrong password")
    assert window.connect_tab.status.text().startswith("Credential refused:")


def test_a_spent_budget_says_so(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    window = make_window()
    connect(qtbot, window, desk_hub.url, desk_hub.broke_token)
    choose(window, model="claude-test")
    send(qtbot, window, "Hello")  # the first call spends more than the tiny budget
    send(qtbot, window, "Hello again")
    assert last(window).role == "error"
    assert window.chat_tab.status.text().startswith("Budget spent:")


def test_a_rate_limit_says_when_to_retry(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    window = connected(qtbot, make_window(), desk_hub)
    choose(window, model="rationed")  # requests_per_min = 1
    send(qtbot, window, "one")
    send(qtbot, window, "two")
    status = window.chat_tab.status.text()
    assert status.startswith("Rate limited: try again in "), status
    assert "⚠ Rate limited" in window.chat_tab.transcript.toPlainText()


def test_an_unavailable_provider_says_so(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    window = connected(qtbot, make_window(), desk_hub)
    for name in ("anthropic", "gemini", "openrouter", "huggingface"):
        desk_hub.fake(name).default = Behaviour(status=503)
    choose(window, model="claude-test")
    send(qtbot, window, "Hello")
    assert window.chat_tab.status.text().startswith("Provider unavailable:")
    assert window.chat_tab.send_button.isEnabled()  # the app goes on
    desk_hub.fake("anthropic").default = Behaviour()
    window.chat_tab.prompt.setPlainText("Again, with the keyboard")
    qtbot.keyClick(window.chat_tab.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: last(window).role == "assistant", timeout=WAIT)


def test_answers_render_as_markdown_with_shaded_code_blocks(
    qtbot: Any, make_window: Callable[[], MainWindow]
) -> None:
    from desktop.chat_tab import CODE_BACKGROUND
    from desktop.store import Message

    chat = make_window().chat_tab
    chat.new_chat().messages.append(
        Message(role="assistant", text="Use **this**:\n\n```python\nx = 1\n```\n")
    )
    chat._render()
    document = chat.transcript.document()
    shaded = [
        document.findBlockByNumber(i).text()
        for i in range(document.blockCount())
        if document.findBlockByNumber(i).blockFormat().background().color() == CODE_BACKGROUND
    ]
    assert shaded == ["x = 1"]
    assert "Use this:" in chat.transcript.toPlainText()


def test_the_model_and_tool_parameters_sent(
    qtbot: Any, make_window: Callable[[], MainWindow]
) -> None:
    from desktop.hub import HubInfo

    chat = make_window().chat_tab
    chat.info = HubInfo(
        health={},
        tools=["llm_complete", "translate", "web_search", "db_query"],
        tool_params={
            "llm_complete": ["prompt", "provider", "model", "system", "max_tokens"],
            "translate": ["prompt", "provider", "model", "max_tokens", "temperature"],
            "web_search": ["query", "max_results", "provider"],
            "db_query": ["sql", "max_rows", "target"],
        },
        llm_providers=["anthropic", "local"],
        search_providers=["brave"],
        models=[{"id": "claude-test", "provider": "anthropic"}, {"id": "r", "provider": "local"}],
    )
    assert chat._wire_model("", "") == "claude-test"
    assert chat._wire_model("local", "") == "local/r"
    assert chat._wire_model("local", "llama-local") == "local/llama-local"
    assert chat._wire_model("", "gpt-x") == "gpt-x"
    assert chat._tool_params("translate", "t", "", "") == {"prompt": "t"}
    assert chat._tool_params("translate", "t", "local", "m") == {
        "prompt": "t",
        "provider": "local",
        "model": "m",
    }
    assert chat._tool_params("web_search", "q", "brave", "m") == {"query": "q", "provider": "brave"}
    assert chat._tool_params("db_query", "SELECT 1", "", "") == {"sql": "SELECT 1"}
    assert chat._tool_params("translate", "t", "", "", "Be terse.", 64) == {
        "prompt": "t",
        "max_tokens": 64,
    }  # translate lists no `system`: its own prompt stays
    assert chat._tool_params("llm_complete", "t", "", "", "Be terse.", 64) == {
        "prompt": "t",
        "system": "Be terse.",
        "max_tokens": 64,
    }
