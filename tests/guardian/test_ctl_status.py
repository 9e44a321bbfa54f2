"""`sealgate-ctl status` prints labelled lines for people, never a Python dict (issue 24,
item 7); `--json` keeps the guardian's map exact."""

from __future__ import annotations

import json

from guardian.ctl_status import duration, status_lines
from tests.helpers import GuardianProcess, run_ctl

STATUS = {
    "version": "0.1.0",
    "uptime_s": 3 * 3600 + 20 * 60 + 5.5,
    "pid": 4242,
    "config_path": "/srv/hub/.pyfun",
    "config_sha256": "1a5de7ffe443f0945da82356965602dddac949ec3ebc51d9778d20112e5b958b",
    "sandbox_connections": 1,
    "llm_providers": ["anthropic", "gemini"],
    "search_providers": [],
    "tools": ["health_check", "llm_complete"],
    "database": "sqlite:/srv/hub/var/guardian/guardian.db",
    "protections": {},
    "background": {
        "tasks": {
            "usage-ledger": {"running": True, "restarts": 0, "last_error": ""},
            "secret-store-poll": {
                "running": False,
                "restarts": 2,
                "last_error": "ConnectionError\x1b]52;c;evil\x07",
            },
        },
        "usage_ledger": {"pending": 3, "capacity": 100000, "dropped": 0},
    },
    "replicas": {"count": 2},  # a field this CLI does not know yet
}


def test_every_field_is_a_labelled_line_in_words() -> None:
    text = "\n".join(status_lines(STATUS))
    assert "{" not in text and "'" not in text and "True" not in text, text
    lines = text.splitlines()
    assert lines[0].split() == ["guardian", "0.1.0,", "pid", "4242,", "up", "3", "h", "20", "min"]
    assert "configuration      /srv/hub/.pyfun (sha256 1a5de7ffe443)" in lines
    assert "sandbox            connected (1 connection)" in lines
    assert "LLM providers      anthropic, gemini" in lines
    assert "search providers   -" in lines
    assert "usage ledger       3 pending of 100,000, 0 dropped" in lines
    assert "replicas           count: 2" in lines
    tasks = [line for line in lines if "secret-store-poll" in line or "usage-ledger" in line]
    assert tasks[0].startswith("background tasks   secret-store-poll not running, restarted 2")
    assert "\x1b" not in text and "\\x1b]52" in text  # escaped, not sent to the terminal
    assert tasks[1].strip() == "usage-ledger running"


def test_durations_read_as_words() -> None:
    assert [duration(s) for s in (0.4, 59, 61, 3600, 90061)] == [
        "0 s",
        "59 s",
        "1 min 1 s",
        "1 h 0 min",
        "1 d 1 h",
    ]


def test_status_from_a_real_guardian_for_people_and_for_scripts(
    guardian: GuardianProcess,
) -> None:
    people = run_ctl(guardian.admin_path, "status")
    assert people.returncode == 0, people.stderr
    assert "{" not in people.stdout and "'" not in people.stdout, people.stdout
    assert people.stdout.startswith("guardian           0.1.0, pid ")
    assert "sandbox            not connected" in people.stdout
    assert "background tasks   " in people.stdout and "usage-ledger running" in people.stdout
    assert "protections        " in people.stdout
    exact = json.loads(run_ctl(guardian.admin_path, "--json", "status").stdout)
    assert exact["background"]["tasks"]["usage-ledger"]["running"] is True
    assert exact["sandbox_connections"] == 0
    # the audit log's key: no secret store here, so a 0600 file, and its public half
    key_file = guardian.runtime / "guardian" / "audit_signing.key"
    assert (
        f"audit log          signing key in file {key_file} (0600), signed by libsodium"
        in people.stdout
    )
    assert exact["background"]["audit_log"]["verifier_key"].startswith("sealgate/audit+")


def test_each_sandbox_process_is_a_line_of_its_own() -> None:
    linked = {
        **STATUS,
        "sandbox_connections": 2,
        "sandboxes": [{"pid": 101, "calls": 5}, {"pid": 102, "calls": "7\x1b[2J"}],
    }
    lines = status_lines(linked)
    at = lines.index("sandbox            connected (2 connections)")
    assert lines[at + 1 : at + 3] == [
        "                   process pid 101, 5 requests",
        "                   process pid 102, 7\\x1b[2J requests",
    ]
