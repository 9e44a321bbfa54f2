"""The status page's "Protections" section: which isolation is in force, said plainly.

Shown only where the status page itself is (a signed-in user, or open mode on loopback);
`/healthz` stays minimal because it is public.
"""

from __future__ import annotations

import html
import re

from protocol.protections import EXPOSED, SandboxProtections


def _yes(value: bool) -> str:
    return "on" if value else "<strong>OFF</strong>"


#: An absolute file path (the runtime's directories, sockets, the env file ...).
PATH = re.compile(r"(?<![\w:/.])/(?:[\w.@+-]+/)*[\w.@+-]+/?")
PATH_HIDDEN = "[a path, shown to admins]"


def hide_paths(text: str) -> str:
    """`text` with every absolute file path replaced: where the runtime lives is for admins
    (a path tells an attacker where the secrets are kept)."""
    return PATH.sub(PATH_HIDDEN, text)


def protections_html(protections: SandboxProtections | None, admin: bool = False) -> str:
    """The section; the runtime's file paths (where the sandbox may write, a path it could
    not open) are shown to admins only."""
    if protections is None:
        return ""
    shown = (lambda text: text) if admin else hide_paths
    rules = ", ".join(shown(rule) for rule in protections.landlock_rules) or "none"
    landlock = (
        f"ABI {protections.landlock_abi}: {html.escape(rules)}"
        if protections.landlock_abi
        else "<strong>unavailable</strong>"
    )
    warn = f"<p class=warn>{html.escape(EXPOSED)}</p>" if protections.exposed else ""
    notes = "".join(f"<li>{html.escape(shown(n))}</li>" for n in protections.notes)
    return f"""<h2>Protections</h2>{warn}
<table id=protections>
<tr><td>Uids</td><td id=prot-uids>{
        "two (guardian and sandbox apart)"
        if protections.two_uids
        else "<strong>one</strong> (guardian and sandbox share a uid)"
    }</td></tr>
<tr><td>no_new_privs</td><td>{_yes(protections.no_new_privs)}</td></tr>
<tr><td>Landlock</td><td id=prot-landlock>{landlock}</td></tr>
<tr><td>seccomp socket filter</td><td id=prot-seccomp>{_yes(protections.seccomp)}</td></tr>
<tr><td>Guardian and supervisor</td><td>made not dumpable at their start
(<code>sealgate-ctl status</code> shows the guardian's)</td></tr>
</table>{f"<ul>{notes}</ul>" if notes else ""}"""
