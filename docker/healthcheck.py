"""The image's HEALTHCHECK: /healthz on the port the hub really listens on (HUB_PORT), so a
container started with another port is not reported unhealthy. Standard library only."""

import os
import sys
import urllib.request

WILDCARDS = ("", "0.0.0.0", "::", "[::]")  # noqa: S104 (recognised, never bound)


def url(environ: dict[str, str]) -> str:
    host = environ.get("HUB_HOST", "").strip()
    host = "127.0.0.1" if host in WILDCARDS else host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{environ.get('HUB_PORT', '7860').strip()}/healthz"


def main() -> int:
    try:
        # always http://HOST:PORT/healthz (url() builds it)
        with urllib.request.urlopen(url(dict(os.environ)), timeout=4) as reply:  # noqa: S310
            return 0 if reply.status == 200 else 1
    except OSError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
