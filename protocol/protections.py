"""Which isolation is in force: the shape both processes report, and how to say it.

The sandbox reports what it applied to itself (start-up log, status page); the guardian
reports what it can see from outside (`sealgate-ctl status`): whether the two processes run as
two uids, whether the guardian is dumpable, and what the kernel says about the sandbox process
(`NoNewPrivs`, `Seccomp` in /proc/<pid>/status). Only data and wording live here, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The sentence logged at error level when nothing keeps the sandbox from the secrets.
EXPOSED = (
    "single uid and no Landlock: code running in the sandbox CAN READ THE SECRETS (the env"
    " file, the guardian's database and the environ of processes started before it) and can"
    " connect to the admin socket; run as root for two uids or on a kernel with Landlock"
)


WRITES_CONFINED = "writes confined"


def landlock_rules(abi: int) -> tuple[str, ...]:
    """The Landlock rules the sandbox applies on a kernel with this ABI (0: none)."""
    if abi <= 0:
        return ()
    rules = ["reads confined to code, Python, certificates, config, state", WRITES_CONFINED]
    if abi >= 4:
        rules.append("TCP connect/bind blocked")
    if abi >= 6:
        rules.append("abstract sockets and signals scoped")
    return tuple(rules)


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxProtections:
    """What the sandbox applied to itself."""

    two_uids: bool
    no_new_privs: bool
    landlock_abi: int  # 0: none applied
    landlock_rules: tuple[str, ...] = ()
    seccomp: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def exposed(self) -> bool:
        """True when nothing but luck keeps a compromised sandbox from the secrets."""
        return not self.two_uids and self.landlock_abi == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "uids": "two" if self.two_uids else "one",
            "no_new_privs": self.no_new_privs,
            "landlock_abi": self.landlock_abi,
            "landlock_rules": list(self.landlock_rules),
            "seccomp": self.seccomp,
            "notes": list(self.notes),
        }

    def describe(self) -> str:
        parts = [
            "two uids" if self.two_uids else "ONE uid (no uid isolation)",
            f"no_new_privs {'on' if self.no_new_privs else 'OFF'}",
        ]
        if self.landlock_abi:
            parts.append(f"landlock ABI {self.landlock_abi}: " + ", ".join(self.landlock_rules))
        else:
            parts.append("landlock unavailable")
        parts.append(
            "seccomp: UDP, raw, packet and other socket families denied"
            if self.seccomp
            else "seccomp OFF"
        )
        return "; ".join(parts + list(self.notes))


def proc_status_fields(text: str) -> dict[str, str]:
    """`/proc/<pid>/status` as a map of field name to value."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def seen_from_proc(text: str) -> dict[str, Any]:
    """What the kernel says about a process: its uid, no_new_privs and seccomp mode."""
    fields = proc_status_fields(text)
    seccomp = {"0": "off", "1": "strict", "2": "filter"}.get(fields.get("Seccomp", ""), "unknown")
    return {
        "uid": int(fields.get("Uid", "-1").split()[0]),
        "no_new_privs": fields.get("NoNewPrivs") == "1",
        "seccomp": seccomp,
    }


def describe_report(report: dict[str, Any]) -> list[str]:
    """The guardian's `status` protections map as lines for `sealgate-ctl status`."""
    if not report:
        return ["unknown (an older guardian)"]
    lines = [
        f"{'two uids' if report['uids'] == 'two' else 'ONE uid'}: guardian"
        f" {report['guardian_uid']}, sandbox {report['sandbox_uid']}",
        f"guardian dumpable: {'YES' if report['guardian_dumpable'] else 'no'}",
        f"kernel Landlock ABI: {report['kernel_landlock_abi'] or 'none'}",
        "sandbox Landlock rules at this ABI: "
        + (", ".join(landlock_rules(report["kernel_landlock_abi"])) or "none")
        + " (what it applied is in its log and on the status page)",
        f"admin socket: {report['admin_socket']}",
    ]
    for seen in report.get("sandboxes", []):
        lines.append(
            f"sandbox pid {seen['pid']} uid {seen['uid']}: no_new_privs"
            f" {'on' if seen['no_new_privs'] else 'OFF'}, seccomp {seen['seccomp']}"
        )
    if report["uids"] == "one" and not report["kernel_landlock_abi"]:
        lines.append(EXPOSED)
    return lines
