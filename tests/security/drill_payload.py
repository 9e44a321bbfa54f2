"""What a poisoned dependency plants to run at the sandbox's next start (the drill in
test_poisoned_dependency.py). Never imported: its source, after a `C = {...}` line naming the
canaries, becomes a `sitecustomize.py`, a `usercustomize.py` and a `.pth` line.

It tries every canary, then writes one JSON report into the first report directory it can
write: whether it ran under the sandbox's policy (no_new_privs, seccomp), what it read and
what it reached. Standard library only; it never raises.
"""

# ruff: noqa: F821  (C is defined by the line put in front of this source)
import errno as _errno
import json as _json
import os as _os
import socket as _socket


def _drill() -> None:
    def outcome(action):
        try:
            action()
        except OSError as exc:
            return _errno.errorcode.get(exc.errno or 0, str(exc))
        except Exception as exc:
            return type(exc).__name__
        return "ok"

    def read(path):
        with open(path, "rb") as handle:
            handle.read(1)

    def unix(address):
        with _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            sock.connect(address)

    def tcp(port):
        with _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            sock.connect(("127.0.0.1", port))

    def udp(port, payload):
        with _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM) as sock:
            sock.sendto(payload, ("127.0.0.1", port))

    status = {}
    try:
        for line in open("/proc/self/status").read().splitlines():
            name, _, value = line.partition(":")
            if name in ("Uid", "NoNewPrivs", "Seccomp"):
                status[name] = value.split()[0]
    except OSError:
        pass
    try:
        cmdline = open("/proc/self/cmdline", "rb").read().replace(b"\0", b" ").decode()
    except (OSError, UnicodeDecodeError):
        cmdline = "?"
    report = {
        "pid": _os.getpid(),
        "control": _os.environ.get("SEALGATE_DRILL_CONTROL", ""),
        "via": C.get("via", "plant"),
        "cmdline": cmdline,
        "status": status,
        "reads": {path: outcome(lambda p=path: read(p)) for path in C["read"]},
        "unix": {address: outcome(lambda a=address: unix(a)) for address in C["unix"]},
        "tcp": outcome(lambda: tcp(C["tcp_port"])),
        "udp": outcome(lambda: udp(C["udp_port"], b"leak")),
        # a DNS query (id 0x5347, one question) to the test's own "resolver"
        "dns": outcome(
            lambda: udp(C["udp_port"], bytes.fromhex("534701000001000000000000") + b"\0")
        ),
        "signal": {str(pid): outcome(lambda p=pid: _os.kill(p, 0)) for pid in C["pids"]},
        "guardian_dir": outcome(lambda: _os.listdir(C["guardian_dir"])),
    }
    # abstract names (the admin socket's among them) are listed in /proc/net/unix
    abstract = {}
    try:
        for line in open("/proc/net/unix").read().splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 8 and fields[7].startswith("@") and "sealgate" in fields[7]:
                name = "\0" + fields[7][1:]
                abstract[fields[7]] = outcome(lambda n=name: unix(n))
    except OSError as exc:
        abstract["listing"] = _errno.errorcode.get(exc.errno or 0, "?")
    report["abstract"] = abstract
    found = {}
    secrets = [s.encode() for s in C["secrets"]]
    try:
        entries = _os.listdir("/proc")
    except OSError as exc:
        entries = []
        report["proc"] = _errno.errorcode.get(exc.errno or 0, "?")
    for entry in entries:
        if not entry.isdigit() or int(entry) == _os.getpid():
            continue
        for name in ("environ", "cmdline"):
            try:
                data = open(f"/proc/{entry}/{name}", "rb").read()
            except OSError:
                continue
            if any(secret in data for secret in secrets):
                found.setdefault(entry, []).append(name)
    for pid in C["pids"]:
        try:
            maps = open(f"/proc/{pid}/maps").read().splitlines()
            fd = _os.open(f"/proc/{pid}/mem", _os.O_RDONLY)
        except OSError:
            continue
        try:
            for line in maps:
                fields = line.split()
                if not fields[1].startswith("r") or (len(fields) > 5 and "/" in fields[5]):
                    continue
                start, end = (int(x, 16) for x in fields[0].split("-"))
                if end - start > 64 * 1024 * 1024:
                    continue
                try:
                    chunk = _os.pread(fd, end - start, start)
                except OSError:
                    continue
                if any(secret in chunk for secret in secrets):
                    found.setdefault(str(pid), []).append("mem")
                    break
        finally:
            _os.close(fd)
    report["found"] = found
    text = _json.dumps(report)
    for directory in C["report_dirs"]:
        path = _os.path.join(directory, f"drill-report-{_os.getpid()}-{id(report)}.json")
        try:
            with open(path, "x") as handle:
                handle.write(text)
            return
        except OSError:
            continue


try:
    _drill()
except Exception:
    pass
