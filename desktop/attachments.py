"""Files attached to a message, turned into what a chat message carries.

Text is extracted here, on the client, with maintained libraries (pypdf, openpyxl, zipfile);
images become OpenAI-style `image_url` parts with a data URL, which the hub passes on.
"""

from __future__ import annotations

import base64
import csv
import io
import mimetypes
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import pypdf

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_TEXT_CHARS = 200_000
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".gif": "image/gif", ".webp": "image/webp"}  # fmt: skip
FILTER = (
    "Supported files (*.png *.jpg *.jpeg *.gif *.webp *.pdf *.csv *.xlsx *.zip *.txt *.md "
    "*.py *.js *.ts *.json *.yaml *.yml *.toml *.html *.css *.c *.h *.cpp *.rs *.go *.java "
    "*.sh *.sql);;All files (*)"
)


class AttachmentError(ValueError):
    """A file that cannot be attached; the message says which and why."""


@dataclass(frozen=True, kw_only=True)
class Attachment:
    name: str
    text: str | None = None  # extracted text, or
    image_url: str | None = None  # a data URL

    def part(self) -> dict[str, Any]:
        """The message content part this attachment becomes."""
        if self.image_url is not None:
            return {"type": "image_url", "image_url": {"url": self.image_url}}
        return {"type": "text", "text": f"--- {self.name} ---\n{self.text}"}


def _clip(text: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    return text[:MAX_TEXT_CHARS] + f"\n[... cut at {MAX_TEXT_CHARS} characters]"


def _pdf(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    pages = [page.extract_text() or "" for page in reader.pages]
    return "\n\n".join(f"[page {i}]\n{t}" for i, t in enumerate(pages, 1))


def _xlsx(data: bytes) -> str:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    out = io.StringIO()
    for sheet in book.worksheets:
        out.write(f"[sheet {sheet.title}]\n")
        writer = csv.writer(out)
        for row in sheet.iter_rows(values_only=True):
            writer.writerow(["" if v is None else v for v in row])
    book.close()
    return out.getvalue()


def _zip(data: bytes) -> str:
    lines: list[str] = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            lines.append(f"[{info.filename}] ({info.file_size} bytes)")
            if info.file_size <= MAX_TEXT_CHARS:
                text = _decode(archive.read(info))
                if text is not None:
                    lines.append(text)
    return "\n".join(lines)


def _decode(data: bytes) -> str | None:
    """UTF-8 text, or None for what looks binary."""
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def load(path: Path) -> Attachment:
    """One file as an attachment; an `AttachmentError` says why not."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise AttachmentError(f"{path.name} is larger than {MAX_FILE_BYTES // 2**20} MiB")
        data = path.read_bytes()
    except OSError as exc:
        raise AttachmentError(f"{path.name} cannot be read: {exc.strerror}") from exc
    suffix = path.suffix.lower()
    try:
        if suffix in IMAGE_TYPES:
            encoded = base64.b64encode(data).decode()
            return Attachment(
                name=path.name, image_url=f"data:{IMAGE_TYPES[suffix]};base64,{encoded}"
            )
        if suffix == ".pdf":
            text = _pdf(data)
        elif suffix in (".xlsx", ".xlsm"):
            text = _xlsx(data)
        elif suffix == ".zip":
            text = _zip(data)
        else:
            decoded = _decode(data)
            if decoded is None:
                kind = mimetypes.guess_type(path.name)[0] or "binary"
                raise AttachmentError(f"{path.name} is not a supported file ({kind})")
            text = decoded
    except AttachmentError:
        raise
    except Exception as exc:  # a damaged PDF, workbook or archive: say so, never crash
        raise AttachmentError(f"{path.name} could not be read: {exc}") from exc
    return Attachment(name=path.name, text=_clip(text))


def content(prompt: str, attachments: list[Attachment]) -> str | list[dict[str, Any]]:
    """A user message's content: plain text, or parts when files are attached."""
    if not attachments:
        return prompt
    return [{"type": "text", "text": prompt}, *(a.part() for a in attachments)]


def as_text(prompt: str, attachments: list[Attachment]) -> str:
    """For `/api` tools, which take one prompt: the extracted text appended."""
    texts = [a.part()["text"] for a in attachments if a.text is not None]
    return "\n\n".join([prompt, *texts])
