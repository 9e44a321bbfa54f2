"""A fake OpenAI-compatible provider in a process of its own, for benchmarks.

python bench/fake_provider.py      prints its port on the first line, serves until killed
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.providers import FakeOpenAI


def main() -> None:
    fake = FakeOpenAI(
        name="bench", reply_text="The quick brown fox jumps over the lazy dog.", event_delay_s=0
    )
    fake.start()
    print(fake.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
