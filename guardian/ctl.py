"""The operator CLI: `./sealgate-ctl` in a checkout, `sealgate-ctl` in the Docker image.

It speaks msgpack RPC to the guardian's admin socket ($HUB_RUNTIME_DIR/guardian/admin.sock,
else the checkout's own var/guardian/admin.sock, or --socket), which only the guardian's own
user and root may open. Tables for people, `--json` (anywhere on the line) for scripts: then
errors are JSON on stdout too, with the same exit status. Passwords are read from a no-echo
prompt, or from the first line of standard input when it is not a terminal; never from the
command line. A reader that goes away (`| head`) ends the output quietly.

Exit status: 0 done, 1 refused or failed, 2 usage error, 3 guardian unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import getpass
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardian import ctl_mcp, mcp_stdio
from guardian.ctl_status import status_lines
from guardian.tlog import note
from protocol.adminaddr import open_admin_channel
from protocol.client import RPCClient
from protocol.errors import RPCError, UpstreamUnavailable
from protocol.printable import printable
from protocol.pyfun import PyfunError, parse
from protocol.runtime import DEFAULT_RUNTIME_DIR, RuntimeLayout

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class Unreachable(Exception):
    """The admin socket cannot be used; the message says why and what to do."""


class UsageError(Exception):
    """The command line is wrong in a way argparse cannot see."""


class NotConfirmed(Exception):
    """A command whose effect reaches every client was not confirmed; the message says how."""


def parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise UsageError(f"bad duration {text!r}: use a number and s, m, h, d or w (e.g. 30d)")
    return float(int(match.group(1)) * _UNITS[match.group(2)])


#: The checkout (or installed tree) this CLI belongs to: its `var/` is the default runtime
#: directory, so the CLI finds the socket whatever the current directory is.
CHECKOUT = Path(__file__).resolve().parent.parent


def default_socket(checkout: Path = CHECKOUT) -> Path:
    """$HUB_RUNTIME_DIR when set (relative to the current directory, as the supervisor reads
    it), else the runtime directory of the checkout this CLI runs from. Installed with pip
    (no checkout: the code sits in site-packages), the current directory's, where the
    `sealgate` command keeps it."""
    configured = os.environ.get("HUB_RUNTIME_DIR")
    if configured:
        root = Path(configured).resolve()
    elif (checkout / "supervisor.py").is_file() and (checkout / "Makefile").is_file():
        root = checkout / DEFAULT_RUNTIME_DIR
    else:
        root = Path(DEFAULT_RUNTIME_DIR).resolve()
    return RuntimeLayout(root).admin_socket


def read_password(prompt: str, confirm: bool) -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise UsageError("no password on standard input (the first line is read)")
        return line
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("again: ") != first:
        raise UsageError("the two passwords differ")
    return first


# -- talking to the guardian ---------------------------------------------------------------


async def _connect(path: Path) -> RPCClient:
    if path.parent.is_dir() and not os.access(path.parent, os.X_OK):
        raise Unreachable(f"permission denied on {path.parent}: run as the guardian's user or root")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise Unreachable(f"permission denied on {path}: run as the guardian's user or root")
    try:
        # The file (two uids), else the abstract name standing in for it (single uid).
        channel = await open_admin_channel(path)
    except FileNotFoundError:
        raise Unreachable(
            f"no admin socket at {path}: is the guardian running? (set"
            " HUB_RUNTIME_DIR or pass --socket)"
        ) from None
    except PermissionError as exc:
        raise Unreachable(f"permission denied on {path}: {exc}") from None
    except OSError as exc:
        raise Unreachable(f"the guardian does not answer on {path} ({exc})") from None
    first = [channel]

    async def connect() -> Any:
        if first:
            return first.pop()
        return await open_admin_channel(path)

    client = RPCClient(connect, client_name="ctl", call_timeout=60, backoff_max=0.2)
    client.start()
    if not await client.wait_connected(3.0):
        error = client.last_error
        await client.close()
        raise Unreachable(f"the guardian does not answer on {path} ({error})")
    return client


async def call(path: Path, method: str, params: dict[str, Any]) -> Any:
    client = await _connect(path)
    try:
        return await client.call(method, params)
    finally:
        await client.close()


# -- output --------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    """One value for people: escaped, since names, labels and details come from outside
    (`--json` keeps them exact)."""
    if value is None:
        return "-"
    if isinstance(value, float) and value > 1_000_000_000:  # an epoch time
        return datetime.datetime.fromtimestamp(value, datetime.UTC).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list):
        return ", ".join(printable(str(v)) for v in value) or "-"
    return printable(str(value))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """`data` exact for scripts, or `text` for people, with no terminal sequence left in it
    (line breaks are the table's own: values were escaped cell by cell)."""
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        print(printable(text, keep_newlines=True))


def report_error(
    as_json: bool, code: str, message: str, data: dict[str, Any] | None = None
) -> None:
    """One error, as a line on stderr for people or `{"error": {...}}` on stdout for scripts
    (with the error's `data` when it has any, such as the upstream server's name)."""
    if as_json:
        error: dict[str, Any] = {"code": code, "message": message}
        if data:
            error["data"] = data
        print(json.dumps({"error": error}, sort_keys=True, default=str))
    else:
        print(f"sealgate-ctl: {printable(message, keep_newlines=True)}", file=sys.stderr)


# -- commands --------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    path = Path(args.socket) if args.socket else default_socket()
    command = args.command
    if command == "ping":
        result = await call(path, "health", {})
        emit(args, result, f"pong: guardian {result['version']}, up {result['uptime_s']:.0f} s")
    elif command == "status":
        result = await call(path, "status", {})
        emit(args, result, "\n".join(status_lines(result)))
    elif command == "providers":
        result = await call(path, "providers", {})
        rows = [
            {
                **p,
                "keys": [
                    f"{k['name']}: {k['origin'] or 'missing'}"
                    + (f" ({k['status']})" if k["status"] not in ("ok", "missing") else "")
                    for k in p["keys"]
                ]
                or ["-"],
            }
            for p in result["providers"]
        ]
        emit(args, result, table(rows, ["name", "kind", "api", "active", "reason", "keys"]))
    elif command == "audit" and args.action == "verify":
        return await audit_verify(args, path)
    elif command == "audit" and args.action == "consistency":
        old = _read_checkpoint(args.checkpoint)
        result = await call(path, "audit.consistency", {"size": old.size})
        result = {"old_checkpoint": old.text, **result}
        print(json.dumps(result, indent=None if args.json else 2))
    elif command == "audit" and args.action == "prove":
        result = await call(path, "audit.prove", {"id": args.id})
        print(json.dumps(result, indent=None if args.json else 2))
    elif command == "audit":
        await audit_tail(args, path)
    elif command == "usage":
        since = parse_since(args.since)
        result = await call(path, "usage.report", {"since": since, "by": args.by})
        emit(
            args,
            result,
            table(
                result["rows"],
                [
                    "key",
                    *(["user_id"] if args.by == "user" else []),
                    "calls",
                    "errors",
                    "input_tokens",
                    "output_tokens",
                    "cost_usd",
                ],
            ),
        )
    elif command == "config":
        if args.action == "check":
            return await config_check(args, path)
        result = await call(path, "config.reload", {})
        emit(
            args,
            result,
            f"configuration reloaded (sha256 {result['sha256'][:12]}); tools:"
            f" {', '.join(result['tools'])}",
        )
    elif command == "secrets":
        await secrets(args, path)
    elif command == "users":
        await users(args, path)
    elif command == "tokens":
        await tokens(args, path)
    elif command == "sessions":
        await sessions(args, path)
    elif command == "oauth":
        await oauth(args, path)
    elif command == "mcp":
        await ctl_mcp.run(args, path, call, emit, table)
    return EXIT_OK


def parse_since(text: str) -> float:
    """`24h`, `7d` ... ago, or an ISO date/time (UTC when no zone is given)."""
    if _DURATION.match(text.strip().lower()):
        return time.time() - parse_duration(text)
    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"bad --since {text!r}: use e.g. 24h, 7d or 2026-11-01T00:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


async def audit_tail(args: argparse.Namespace, path: Path) -> None:
    params: dict[str, Any] = {"since": parse_since(args.since)}
    for key in ("user", "tool"):
        if getattr(args, key):
            params[key] = getattr(args, key)
    columns = ["id", "ts", "principal", "action", "tool", "outcome", "ip", "detail"]
    client = await _connect(path)
    try:
        result = await client.call("audit.tail", params)
        emit(args, result, table(result["entries"], columns))
        last = max((e["id"] for e in result["entries"]), default=0)
        while args.follow:
            await asyncio.sleep(1.0)
            more = await client.call("audit.tail", {**params, "after_id": last})
            for entry in more["entries"]:
                last = max(last, entry["id"])
                line = (
                    json.dumps(entry, default=str)
                    if args.json
                    else "  ".join(_cell(entry.get(c)) for c in columns)
                )
                print(line, flush=True)
    finally:
        await client.close()


@dataclass(frozen=True)
class _Kept:
    text: str
    size: int


def _read_checkpoint(name: str) -> _Kept:
    """A signed checkpoint's file: its text and tree size (the signature is checked by
    whoever verifies the proof, `tools/audit_verify.py consistency`)."""
    try:
        text = Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the checkpoint {name}: {exc}") from None
    cut = text.rfind("\n\n")
    try:
        checkpoint = note.parse_checkpoint(text[: cut + 1] if cut >= 0 else text)
    except note.NoteError as exc:
        raise UsageError(f"{name} is not a checkpoint: {exc}") from None
    if checkpoint.size < 1:
        raise UsageError(f"{name} is the empty tree: every tree extends it")
    return _Kept(text, checkpoint.size)


async def audit_verify(args: argparse.Namespace, path: Path) -> int:
    """The whole log, and the consistency from a checkpoint kept elsewhere when given."""
    params: dict[str, Any] = {}
    if args.checkpoint:
        try:
            params["checkpoint"] = Path(args.checkpoint).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the checkpoint {args.checkpoint}: {exc}") from None
    result = await call(path, "audit.verify", params)
    held = ", ".join(str(size) for size in result["checked"]) or "none yet"
    if result["ok"]:
        text = (
            f"ok: {result['size']:,} leaves, root {result['root']}; signed checkpoints"
            f" reproduced at sizes: {held}"
        )
    else:
        where = result["first_bad_index"]
        text = (
            f"FAILED{'' if where is None else f' at leaf {where}'}: {printable(result['problem'])}"
        )
    emit(args, result, text)
    return EXIT_OK if result["ok"] else EXIT_FAILED


async def config_check(args: argparse.Namespace, path: Path) -> int:
    """Validate a .pyfun file, applying nothing: its syntax here, and what would be active
    with the guardian's current secrets when the guardian answers."""
    try:
        text = Path(args.file).read_text(encoding="utf-8")
        config = parse(text, args.file)
    except OSError as exc:
        report_error(args.json, "invalid_config", f"cannot read {args.file}: {exc.strerror}")
        return EXIT_FAILED
    except PyfunError as exc:
        report_error(args.json, "invalid_config", str(exc))
        return EXIT_FAILED
    lines = [
        f"{args.file}: OK (sha256 {config.sha256[:12]})",
        *[f"warning: {w}" for w in config.warnings],
        *[f"translated: {t}" for t in config.translations],
    ]
    summary: dict[str, Any] = {
        "ok": True,
        "sha256": config.sha256,
        "warnings": list(config.warnings),
        "translations": list(config.translations),
    }
    try:
        checked = await call(path, "config.check", {"text": text, "source": args.file})
    except Unreachable as exc:
        lines.append(f"(activation not checked: {exc})")
    else:
        summary.update(checked)
        lines.append(
            "would activate: LLM "
            + (", ".join(checked["llm_providers"]) or "none")
            + "; search "
            + (", ".join(checked["search_providers"]) or "none")
        )
        lines.append("tools: " + ", ".join(checked["tools"]))
    emit(args, summary, "\n".join(lines))
    return EXIT_OK


async def secrets(args: argparse.Namespace, path: Path) -> None:
    columns = ["name", "version", "status", "created_at", "last_used_at"]
    if args.action == "set":
        value = read_password(f"value of {args.name}: ", confirm=False)
        result = await call(path, "secrets.set", {"name": args.name, "value": value})
        emit(args, result, f"{args.name}: version {result['version']} stored")
    elif args.action == "list":
        result = await call(path, "secrets.list", {})
        text = table(result["secrets"], columns)
        if not result["enabled"]:
            text = f"secret store off: {result['why_disabled']}"
        emit(args, result, text)
    elif args.action == "history":
        result = await call(path, "secrets.history", {"name": args.name})
        emit(args, result, table(result["versions"], columns))
    elif args.action == "delete":
        await call(path, "secrets.delete", {"name": args.name})
        emit(args, {"ok": True}, f"{args.name} deleted")
    else:
        result = await call(
            path, "secrets.rekey", {"new_key_file": str(Path(args.new_key_file).resolve())}
        )
        emit(
            args,
            result,
            f"{result['count']} entries re-encrypted under the new key; now make"
            " it the guardian's master key before its next start",
        )


async def users(args: argparse.Namespace, path: Path) -> None:
    action = args.action
    if action == "list":
        result = await call(path, "users.list", {})
        emit(
            args,
            result,
            table(result["users"], ["name", "role", "failed_logins", "locked_until", "created_at"]),
        )
        return
    if action == "add":
        password = read_password(f"password for {args.name}: ", confirm=True)
        result = await call(
            path, "users.add", {"name": args.name, "password": password, "role": args.role}
        )
        text = f"user {args.name} added (role {args.role})"
        if result.get("auth_switched_on"):
            text += (
                "\nauth is now ON: open mode has ended. Every client (MCP, OpenAI SDKs, /api)"
                " must now send a token;\nissue one with: sealgate-ctl tokens issue --user"
                f" {args.name}"
            )
        emit(args, result, text)
    elif action == "passwd":
        password = read_password(f"new password for {args.name}: ", confirm=True)
        await call(path, "users.passwd", {"name": args.name, "password": password})
        emit(
            args,
            {"ok": True},
            f"password of {args.name} changed; their sessions, OAuth consents and OAuth tokens"
            " ended",
        )
    elif action == "role":
        await call(path, "users.role", {"name": args.name, "role": args.role})
        emit(
            args,
            {"ok": True},
            f"{args.name} now has role {args.role}; their OAuth consents and tokens were revoked"
            " (each client asks them again)",
        )
    elif action == "delete":
        await delete_user(args, path)
    else:  # lock, unlock
        await call(path, f"users.{action}", {"name": args.name})
        emit(args, {"ok": True}, f"user {args.name}: {action} done")


#: What deleting the last user does, said before (to confirm) and after (as done).
_REOPENS = (
    "without a user, auth turns off and the gateway returns to open mode: on loopback anyone"
    " on this machine may use its tools and keys without a token (elsewhere protected routes"
    ' answer 401), unless [HUB] auth = "required"'
)


def confirmed(question: str) -> bool:
    """A yes from the person at the terminal; never from a pipe or a script."""
    if not sys.stdin.isatty():
        return False
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


async def delete_user(args: argparse.Namespace, path: Path) -> None:
    """Deleting the last user reopens the gateway: it needs `--yes` (or a yes at the terminal),
    and the output says what happened to auth."""
    listing = await call(path, "users.list", {})
    last = [u.get("name") for u in listing["users"]] == [args.name]
    if last and not args.yes:
        question = f"{args.name} is the last user: {_REOPENS}."
        if args.json or not confirmed(f"{printable(question)}\ndelete {printable(args.name)}?"):
            raise NotConfirmed(
                f"{question} Not deleted: add another user first, or pass --yes to delete it"
                " anyway."
            )
    result = await call(path, "users.delete", {"name": args.name})
    text = (
        f"user {args.name} deleted, with every API token, session, OAuth consent and OAuth"
        " token; a new user of this name starts with nothing"
    )
    if result.get("auth_switched_off"):
        text += "\nauth is now OFF: no user remains, " + (
            "so open mode returns: the gateway is open on loopback, and anyone on this machine"
            " may use its tools and keys without a token"
            if result.get("open_mode")
            else "and protected routes answer 401 until a user exists"
        )
        text += "\nadd a user to turn auth back on: sealgate-ctl users add NAME"
    emit(args, result, text)


async def tokens(args: argparse.Namespace, path: Path) -> None:
    if args.action == "issue":
        params: dict[str, Any] = {"user": args.user, "label": args.label or ""}
        if args.expires:
            params["expires_s"] = parse_duration(args.expires)
        result = await call(path, "tokens.issue", params)
        emit(args, result, result["token"])
    elif args.action == "list":
        result = await call(path, "tokens.list", {"user": args.user} if args.user else {})
        emit(
            args,
            result,
            table(
                result["tokens"],
                [
                    "id",
                    "user_name",
                    "label",
                    "created_at",
                    "expires_at",
                    "revoked_at",
                    "last_used_at",
                ],
            ),
        )
    else:
        await call(path, "tokens.revoke", {"token": args.token})
        emit(args, {"ok": True}, "token revoked")


async def sessions(args: argparse.Namespace, path: Path) -> None:
    if args.action == "list":
        result = await call(path, "sessions.list", {})
        emit(
            args,
            result,
            table(
                result["sessions"],
                ["id", "user_name", "ip", "created_at", "last_seen_at", "expires_at"],
            ),
        )
        return
    if bool(args.user) == bool(args.id):
        raise UsageError("sessions revoke needs --user NAME or --id ID")
    params = {"user": args.user} if args.user else {"id": args.id}
    result = await call(path, "sessions.revoke", params)
    emit(args, result, f"{result['revoked']} session(s) ended")


async def oauth(args: argparse.Namespace, path: Path) -> None:
    """`oauth clients [list | revoke CLIENT_ID]`, `oauth grants [list | revoke --user U
    CLIENT_ID]`: what remote MCP clients were allowed, and taking it back (with their tokens)."""
    if args.kind == "clients":
        revoke = args.client if args.action == "revoke" else None
        result = await call(path, "oauth.clients", {"revoke": revoke} if revoke else {})
        text = table(
            result["clients"],
            ["client_id", "kind", "name", "created_at", "revoked_at", "live_tokens"],
        )
        if revoke:
            text = f"client {revoke} revoked with its tokens"
        emit(args, result, text)
        return
    params: dict[str, Any] = {"user": args.user} if args.user else {}
    if args.action == "revoke":
        if not args.user or not args.client:
            raise UsageError("oauth grants revoke needs --user NAME and a CLIENT_ID")
        params["revoke_client"] = args.client
    result = await call(path, "oauth.grants", params)
    text = table(result["grants"], ["user_name", "client_id", "scope", "updated_at", "live_tokens"])
    if args.action == "revoke":
        text = f"consent of {args.user} for {args.client} revoked with its tokens"
    emit(args, result, text)


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting, so usage errors can be JSON;
    `--json` and `--socket` are accepted before or after any subcommand."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("parents", [_common()])
        super().__init__(**kwargs)

    def error(self, message: str) -> Any:
        raise UsageError(f"{message} (see {self.prog} --help)")


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's parser must not reset what the top level already set.
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    common.add_argument(
        "--socket",
        default=argparse.SUPPRESS,
        help="admin socket (default: $HUB_RUNTIME_DIR/guardian/admin.sock, else the checkout's"
        " var/guardian/admin.sock)",
    )
    return common


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="sealgate-ctl", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("ping", help="check that the guardian answers")
    sub.add_parser("status", help="versions, uptime, sandbox link, database, config")
    sub.add_parser("providers", help="active or not and why; where each key came from")
    ctl_mcp.add_parser(sub)
    audit = sub.add_parser("audit", help="the audit log").add_subparsers(
        dest="action", required=True
    )
    tail = audit.add_parser("tail", help="recent audit entries")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new entries")
    tail.add_argument("--user")
    tail.add_argument("--tool")
    tail.add_argument("--since", default="24h", help="24h, 7d ... or an ISO time")
    verify = audit.add_parser(
        "verify", help="check every leaf and checkpoint of the verifiable log; name the first bad"
    )
    verify.add_argument(
        "--from", dest="checkpoint", help="a signed checkpoint file kept outside the database"
    )
    audit.add_parser(
        "prove", help="an inclusion proof of a receipt id, audit:<id> or a leaf index (JSON)"
    ).add_argument("id")
    audit.add_parser(
        "consistency", help="a proof that the latest checkpoint extends an older one (JSON)"
    ).add_argument("checkpoint", help="the older signed checkpoint's file")
    usage = sub.add_parser("usage", help="usage and cost").add_subparsers(
        dest="action", required=True
    )
    report = usage.add_parser("report", help="calls, errors, tokens and cost")
    report.add_argument(
        "--by", default="user", choices=["user", "model", "provider", "day", "tool"]
    )
    report.add_argument("--since", default="30d")
    config = sub.add_parser("config", help="check or reload .pyfun").add_subparsers(
        dest="action", required=True
    )
    config.add_parser("check", help="validate a file, apply nothing").add_argument("file")
    config.add_parser("reload", help="re-read .pyfun and secrets (like SIGHUP)")

    users_cmd = sub.add_parser("users", help="manage users").add_subparsers(
        dest="action", required=True
    )
    add = users_cmd.add_parser("add", help="add a user (password from a prompt or stdin)")
    add.add_argument("name")
    add.add_argument("--role", default="user")
    users_cmd.add_parser("list", help="list users")
    for action in ("lock", "unlock", "passwd"):
        users_cmd.add_parser(action, help=f"{action} a user").add_argument("name")
    delete = users_cmd.add_parser("delete", help="delete a user with their tokens and sessions")
    delete.add_argument("name")
    delete.add_argument(
        "--yes",
        action="store_true",
        help="delete even the last user (auth then turns off: open mode on loopback)",
    )
    role = users_cmd.add_parser("role", help="change a user's role")
    role.add_argument("name")
    role.add_argument("role")

    secrets_cmd = sub.add_parser("secrets", help="the encrypted secret store").add_subparsers(
        dest="action", required=True
    )
    secrets_cmd.add_parser(
        "set", help="store a new version (value from a prompt or stdin)"
    ).add_argument("name")
    secrets_cmd.add_parser("list", help="names, versions, dates, status; never values")
    secrets_cmd.add_parser("history", help="every version of one secret").add_argument("name")
    secrets_cmd.add_parser("delete", help="delete a secret").add_argument("name")
    secrets_cmd.add_parser("rekey", help="re-encrypt under a new master key").add_argument(
        "new_key_file", help="file with the new key (32 bytes, base64), readable by the guardian"
    )

    tokens_cmd = sub.add_parser("tokens", help="manage API tokens").add_subparsers(
        dest="action", required=True
    )
    issue = tokens_cmd.add_parser("issue", help="issue a token (printed once)")
    issue.add_argument("--user", required=True)
    issue.add_argument("--expires", help="lifetime such as 30d, 12h (default: none)")
    issue.add_argument("--label", default="")
    listing = tokens_cmd.add_parser("list", help="list tokens (never their values)")
    listing.add_argument("--user")
    tokens_cmd.add_parser("revoke", help="revoke a token by id or value").add_argument("token")

    sessions_cmd = sub.add_parser("sessions", help="manage login sessions").add_subparsers(
        dest="action", required=True
    )
    bridge = sub.add_parser(
        "mcp-stdio",
        help="serve MCP on stdin/stdout, relayed to a gateway's URL (no admin socket needed)",
    )
    mcp_stdio.add_arguments(bridge)

    sessions_cmd.add_parser("list", help="list sessions")
    revoke = sessions_cmd.add_parser("revoke", help="end sessions")
    revoke.add_argument("--user")
    revoke.add_argument("--id")

    oauth_cmd = sub.add_parser(
        "oauth", help="OAuth clients and the consents users gave them"
    ).add_subparsers(dest="kind", required=True)
    for kind, what in (("clients", "OAuth clients"), ("grants", "consents users gave")):
        actions = oauth_cmd.add_parser(kind, help=f"list or revoke {what}").add_subparsers(
            dest="action", required=True
        )
        listed = actions.add_parser("list", help=f"list {what}")
        listed.add_argument("--user", help="only this user's" if kind == "grants" else "ignored")
        revoked = actions.add_parser("revoke", help="revoke, with every token issued under it")
        revoked.add_argument("client", help="the client_id")
        revoked.add_argument("--user", help="whose consent (grants only)")
    return top


def _quiet_stdout() -> None:
    """The reader of our output went away: point stdout at /dev/null so the interpreter's
    final flush cannot raise again (the recipe of Python's signal documentation)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _main(argv, "--json" in argv)
        sys.stdout.flush()  # here, where a closed pipe can still be caught
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK
    return code


def _main(argv: list[str], as_json: bool) -> int:
    try:
        args = parser().parse_args(argv)
        args.json = getattr(args, "json", False)
        args.socket = getattr(args, "socket", None)
        if args.command == "mcp-stdio":  # a client tool: never opens the admin socket
            return mcp_stdio.run(args)
        return asyncio.run(run(args))
    except (UsageError, mcp_stdio.BridgeError) as exc:
        report_error(as_json, "usage", str(exc))
        return EXIT_USAGE
    except (Unreachable, mcp_stdio.BridgeUnreachable) as exc:
        report_error(as_json, "unreachable", str(exc))
        return EXIT_UNREACHABLE
    except UpstreamUnavailable as exc:  # the guardian answered: an upstream is down
        text = exc.message if as_json else f"{exc.code.value}: {exc.message}"
        report_error(as_json, exc.code.value, text, exc.data)
        return EXIT_FAILED
    except RPCError as exc:
        if exc.code.value == "unavailable":
            report_error(as_json, "unreachable", exc.message)
            return EXIT_UNREACHABLE
        text = exc.message if as_json else f"{exc.code.value}: {exc.message}"
        report_error(as_json, exc.code.value, text)
        return EXIT_FAILED
    except NotConfirmed as exc:
        report_error(as_json, "not_confirmed", str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        report_error(as_json, "interrupted", "interrupted")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
