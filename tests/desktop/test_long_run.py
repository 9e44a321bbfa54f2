"""The desktop app over a long run: a stream of 20,000 chunks through a real hub, and a chat
long enough to scroll."""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from desktop.store import Message
from desktop.window import MainWindow
from tests.desktop.hub import DesktopHub
from tests.desktop.test_app import choose, connected, last, send
from tests.fakes.base import Behaviour

CHUNKS = 20_000
#: References to `True` held for the whole run: on a build that still leaks one per emit,
#: this process then fails the assertion below instead of aborting.
_TRUES: list[bool] = []


def test_twenty_thousand_streamed_chunks_keep_trues_reference_count(
    qtbot: Any, make_window: Callable[[], MainWindow], desk_hub: DesktopHub
) -> None:
    """PySide6 6.12 on Python 3.11 loses a reference to `True` per Python-side signal emit
    (and one to `None` per call of a Qt method returning nothing); the app died with
    `bool_dealloc` after about 5,000 chunks. Extra references keep this process alive on a
    build that still leaks, so the counts can be compared."""
    words = [f"w{i}" for i in range(CHUNKS)]
    desk_hub.fake("local").behave(Behaviour(text=" ".join(words), trickle_s=0))
    window = connected(qtbot, make_window(), desk_hub)
    chat = window.chat_tab
    assert chat.client is not None
    streamed = 0
    original = chat.client.chat_stream

    def counting(*args: Any, **kwargs: Any) -> Iterator[Any]:
        nonlocal streamed
        for item in original(*args, **kwargs):
            streamed += isinstance(item, str)
            yield item

    chat.client.chat_stream = counting  # type: ignore[method-assign]
    choose(window, provider="local", model="llama-local")
    _TRUES.extend([True] * (CHUNKS * 4))
    # Garbage from the set-up, freed by a collection that happens to run during the stream
    # (more of them on a loaded machine), would lower the counts without any leak.
    gc.collect()
    before, nones = sys.getrefcount(True), sys.getrefcount(None)
    started = time.monotonic()
    send(qtbot, window, "Stream a long answer")
    elapsed = time.monotonic() - started
    gc.collect()
    after, nones_after = sys.getrefcount(True), sys.getrefcount(None)
    answer = last(window)
    assert answer.role == "assistant", answer.text
    assert answer.text == " ".join(words)
    assert streamed >= CHUNKS, streamed
    assert after >= before - 100, f"True lost {before - after} references over {streamed} chunks"
    assert nones_after >= nones - 1000, f"None lost {nones - nones_after} references"
    print(f"{streamed} chunks in {elapsed:.1f} s")


def test_a_long_chat_scrolled_to_the_end_shows_its_newest_messages(
    qtbot: Any, make_window: Callable[[], MainWindow]
) -> None:
    """Shading code blocks by editing the document after `setMarkdown()` left the layout
    stale: the newest messages were drawn as dots and the end could not be reached."""
    window = make_window()
    chat = window.chat_tab
    window.tabs.setCurrentWidget(chat)
    conversation = chat.new_chat()
    for i in range(300):
        conversation.messages.append(Message(role="user", text=f"question {i}"))
        answer = f"Answer {i}:\n\n```python\nx = {i}\n```\n\nmore text "
        conversation.messages.append(Message(role="assistant", text=answer * 2))
    chat._render()
    qtbot.wait(300)  # let the view settle, as a person would look a moment later
    view, document = chat.transcript, chat.transcript.document()
    bar = view.verticalScrollBar()
    bar.setValue(bar.maximum())
    qtbot.wait(50)
    top = view.cursorForPosition(view.viewport().rect().topLeft()).block()
    bottom = view.cursorForPosition(view.viewport().rect().bottomLeft()).block()
    assert bottom == document.lastBlock(), bottom.text()
    assert top.blockNumber() < bottom.blockNumber() - 10, "the view is past the end"
    shown, block = [], top
    while block.isValid() and block.blockNumber() <= bottom.blockNumber():
        assert block.layout().lineCount() > 0, f"block {block.blockNumber()} is not laid out"
        shown.append(block.text())
        block = block.next()
    assert "question 299" in shown and "x = 299" in shown, shown
