"""The build context an engine sends, computed from `.dockerignore` as Docker reads it
(moby's patternmatcher): patterns are cleaned paths with `*`, `?`, `[...]` and `**`; a
pattern matches a path or any of its parent directories; the last matching pattern wins,
and a `!` pattern puts back what an earlier one left out."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    depth: int
    exclusion: bool


def _regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # `**/`: any number of leading directories
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            body = pattern[i + 1 : end]
            out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
            i = end
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out + r"\Z")


def parse(text: str) -> list[Pattern]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        line = line[1:].strip() if exclusion else line
        line = posixpath.normpath(line).lstrip("/")
        patterns.append(Pattern(_regex(line), len(line.split("/")), exclusion))
    return patterns


def excluded(path: str, patterns: list[Pattern]) -> bool:
    """Whether `path` (relative, with `/`) stays out of the context."""
    parts = path.split("/")
    verdict = False
    for pattern in patterns:
        match = bool(pattern.regex.match(path))
        if not match and len(parts) > 1:
            parent = "/".join(parts[: min(pattern.depth, len(parts) - 1)])
            match = bool(pattern.regex.match(parent))
        if match:
            verdict = not pattern.exclusion
    return verdict


def context(files: list[str], dockerignore: str) -> set[str]:
    """The files of `files` that the engine sends."""
    patterns = parse(dockerignore)
    return {f for f in files if not excluded(f, patterns)}


def copy_sources(dockerfile: str) -> list[str]:
    """Every source of every COPY/ADD from the context (not `--from=` another stage)."""
    text = dockerfile.replace("\\\n", " ")
    sources: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]):
            continue
        sources += args[:-1]
    return sources


def covered(source: str, files: set[str]) -> bool:
    """Whether a COPY source finds something in the context: the file, or a file beneath."""
    source = posixpath.normpath(source).lstrip("/")
    return source in files or any(f.startswith(source + "/") for f in files)


def tracked_files(root: Path) -> list[str]:
    import subprocess

    done = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in done.stdout.splitlines() if (root / line).is_file()]
