"""The desktop client's pure logic: error mapping, attachments, credential vault, storage."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keyring
import openpyxl
import pytest
from keyring.backend import KeyringBackend

from desktop import attachments, bounds
from desktop.credentials import SERVICE, CredentialVault
from desktop.errors import (
    BudgetSpent,
    CredentialRefused,
    HubUnreachable,
    NotAllowed,
    ProviderUnavailable,
    RateLimited,
    RequestRefused,
    from_response,
    from_stream_event,
)
from desktop.hub import Credential
from desktop.render import meta_line, tool_result_markdown
from desktop.store import Chat, ChatStore, Message, Settings
from tests.desktop.hub import minimal_pdf


def body(code: str, message: str = "m") -> str:
    return json.dumps({"error": {"code": code, "message": message}})


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (401, "unauthenticated", CredentialRefused),
        (403, "forbidden", NotAllowed),
        (429, "budget_exceeded", BudgetSpent),
        (429, "rate_limited", RateLimited),
        (502, "provider_error", ProviderUnavailable),
        (504, "timeout", ProviderUnavailable),
        (400, "invalid_params", RequestRefused),
        (415, "unsupported_media_type", RequestRefused),
    ],
)
def test_every_status_maps_to_its_state(status: int, code: str, kind: type) -> None:
    assert type(from_response(status, body(code), {"retry-after": "7"})) is kind


def test_rate_limited_carries_the_retry_time() -> None:
    error = from_response(429, body("rate_limited"), {"retry-after": "42"})
    assert isinstance(error, RateLimited) and error.retry_after_s == 42
    assert "42 s" in str(error)
    assert isinstance(from_response(429, "not json", {"retry-after": "x"}), RateLimited)


def test_a_hub_without_guardian_is_unreachable_and_other_503s_are_providers() -> None:
    down = body("unavailable", "the guardian is unreachable (gone); try again shortly")
    assert isinstance(from_response(503, down, {}), HubUnreachable)
    assert isinstance(
        from_response(503, body("unavailable", "all keys cooling"), {}), ProviderUnavailable
    )


def test_a_stream_error_event_maps_by_code() -> None:
    event = {"error": {"code": "provider_error", "message": "upstream broke", "type": "api_error"}}
    assert isinstance(from_stream_event(event), ProviderUnavailable)


def test_text_files_xlsx_and_zip_are_extracted(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    book.active.title = "Q1"
    book.active.append(["city", "visits"])
    book.active.append(["Paris", 3])
    book.save(tmp_path / "t.xlsx")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("src/main.py", "print('hi')\n")
        archive.writestr("logo.bin", b"\0\1\2")
    (tmp_path / "code.zip").write_bytes(buffer.getvalue())
    (tmp_path / "main.rs").write_text("fn main() {}\n")
    sheet = attachments.load(tmp_path / "t.xlsx").text or ""
    assert "[sheet Q1]" in sheet and "Paris,3" in sheet
    archive_text = attachments.load(tmp_path / "code.zip").text or ""
    assert "[src/main.py]" in archive_text and "print('hi')" in archive_text
    assert "[logo.bin] (3 bytes)" in archive_text
    assert attachments.load(tmp_path / "main.rs").part()["text"].endswith("fn main() {}\n")


def test_bad_files_get_a_clear_error_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    (tmp_path / "blob.bin").write_bytes(b"\0\xff" * 10)
    (tmp_path / "broken.xlsx").write_bytes(b"PK nope")
    for name in ("broken.pdf", "blob.bin", "broken.xlsx", "missing.txt"):
        with pytest.raises(attachments.AttachmentError, match=name):
            attachments.load(tmp_path / name)


def test_a_pdf_text_and_message_parts(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(minimal_pdf("Hello PDF"))
    pdf = attachments.load(tmp_path / "a.pdf")
    assert pdf.text is not None and "Hello PDF" in pdf.text
    assert attachments.content("hi", []) == "hi"
    assert attachments.content("hi", [pdf])[1]["type"] == "text"
    assert "Hello PDF" in attachments.as_text("hi", [pdf])


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.values.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.values[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.values.pop((service, username), None)


def test_the_vault_uses_the_keyring_where_there_is_one(tmp_path: Path) -> None:
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    vault = CredentialVault(tmp_path)
    vault.save("http://hub", Credential(kind="session", value="s3cret"))
    assert vault.uses_keyring and "system keyring" in vault.where()
    assert not vault.file.exists()
    assert json.loads(backend.values[(SERVICE, "http://hub")])["value"] == "s3cret"
    assert vault.load("http://hub") == Credential(kind="session", value="s3cret")
    vault.forget("http://hub")
    assert vault.load("http://hub") is None


def test_without_a_keyring_the_vault_is_a_0600_file_and_says_so(tmp_path: Path) -> None:
    vault = CredentialVault(tmp_path)
    assert not vault.uses_keyring and "0600" in vault.where()
    vault.save("http://hub", Credential(kind="token", value="sg_x"))
    assert vault.file.stat().st_mode & 0o777 == 0o600
    assert vault.load("http://hub") == Credential(kind="token", value="sg_x")
    assert "sg_x" not in repr(vault.load("http://hub"))
    vault.file.write_text("{not json")
    assert vault.load("http://hub") is None


def test_chats_and_settings_round_trip_and_a_damaged_file_is_skipped(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    chat = Chat(title="t", messages=[Message(role="user", text="hi", attachments=["a.pdf"])])
    store.save(chat)
    (store.root / "junk.json").write_text("{")
    loaded = store.load_all()
    assert [c.title for c in loaded] == ["t"] and loaded[0].messages[0].attachments == ["a.pdf"]
    assert (store.root / f"{chat.id}.json").stat().st_mode & 0o777 == 0o600
    settings = Settings(tmp_path)
    settings.update(hub_url="http://x", model="m")
    assert Settings(tmp_path)["model"] == "m"
    settings.path.write_text('{"unknown": 1, "tool": "summarize"}')
    assert Settings(tmp_path)["tool"] == "summarize"


def test_the_report_line_and_tool_results() -> None:
    line = meta_line(
        {
            "model": "m",
            "provider": "gemini",
            "fallback_path": [{"provider": "anthropic", "error": "503"}],
            "input_tokens": 3,
            "output_tokens": 4,
            "cost_usd": 0.5,
        }
    )
    assert line == (
        "model m · provider gemini · fallback anthropic (503) → gemini · 3 in / 4 out tokens"
        " · $0.500000"
    )
    rows = tool_result_markdown({"columns": ["a", "b"], "rows": [[1, 2]], "row_count": 1})
    assert rows.splitlines()[-1] == "| 1 | 2 |"
    assert "- [T](https://u): s" in tool_result_markdown(
        {"results": [{"title": "T", "url": "https://u", "snippet": "s"}]}
    )


def test_history_sent_alternates_and_leaves_out_errors_and_tools() -> None:
    from desktop.chat_tab import ChatTab

    chat = Chat(
        messages=[
            Message(role="user", text="q1", tool="llm_complete"),
            Message(role="assistant", text="a1"),
            Message(role="user", text="q2", tool="llm_complete"),
            Message(role="error", text="Rate limited"),
            Message(role="user", text="s", tool="summarize"),
            Message(role="assistant", text="summary", meta={"tool": "summarize"}),
            Message(role="user", text="q3", tool="llm_complete"),
        ]
    )
    assert ChatTab._history(chat) == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
    ]


def test_the_runner_hands_over_chunks_in_batches_then_the_result(qtbot: Any) -> None:
    """Chunks queued by a worker reach the GUI thread joined, in order, before the result;
    a failure reaches its handler; no Python-side signal is emitted per chunk."""
    from desktop.errors import HubError
    from desktop.workers import Runner

    runner = Runner()
    chunks: list[str] = []
    results: list[object] = []

    def work(emit: Callable[[str], None]) -> int:
        for i in range(1000):
            emit(f"{i},")
        return 7

    def broken(emit: Callable[[str], None]) -> None:
        emit("partial")
        raise HubError("the hub went away")

    runner.start(work, results.append, results.append, chunks.append)
    runner.start(broken, results.append, results.append)
    qtbot.waitUntil(lambda: not runner.busy, timeout=10_000)
    assert "".join(chunks) == "".join(f"{i}," for i in range(1000))
    assert len(chunks) < 1000  # coalesced
    assert sorted(map(str, results)) == ["7", "the hub went away"]


def test_a_tools_provider_kind_comes_from_its_parameters() -> None:
    from desktop.chat_tab import tool_kind

    assert tool_kind(["query", "max_results", "provider"]) == "search"
    assert tool_kind(["prompt", "provider", "model"]) == "llm"
    assert tool_kind(["sql", "max_rows", "target"]) == "none"


def test_who_is_said_in_words() -> None:
    from desktop.connect_tab import who
    from desktop.hub import HubClient, HubInfo

    def info(**values: Any) -> HubInfo:
        return HubInfo(
            health={}, tools=[], tool_params={}, llm_providers=[], search_providers=[], **values
        )

    token = HubClient("http://127.0.0.1:1", Credential(kind="token", value="t"))
    try:
        assert who(token, info(user="ada", role="analyst")) == "signed in as ada, role analyst"
        assert who(token, info(open_mode=True)).startswith("in open mode")
        assert who(token, info()) == "with an API token"  # a hub too old to say whose
    finally:
        token.close()


def test_a_stopped_answer_says_what_it_can_have_cost() -> None:
    line = meta_line({"stopped": True, "cost_bound_usd": 0.0012, "input_bound": 90})
    assert "at most $0.001200" in line and "≤ 90 in" in line
    assert "cost not reported" in meta_line({"stopped": True})
    assert "at most" not in meta_line({"stopped": True, "cost_usd": 0.5})


@pytest.mark.parametrize(
    "payload",
    [
        {"model": "m", "messages": [{"role": "user", "content": "Hi"}]},
        {"model": "é", "messages": [{"role": "user", "content": "日本語 " * 50}]},
        {},
    ],
)
def test_the_stopped_bound_is_the_hubs_bound(payload: dict[str, Any]) -> None:
    """The desktop ships without the server, so it keeps its own copy of the hub's rule."""
    from guardian.calls import costs

    assert bounds.input_token_bound(payload) == costs.input_token_bound(payload)
    for text in ("", "plain", "ünïcødé ✓"):
        assert bounds.text_token_bound(text) == costs.text_token_bound(text)
