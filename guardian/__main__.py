"""`python -I <project>/guardian/__main__.py`: how the supervisor and the systemd unit start
the guardian (`python -m guardian` works too, wherever the project is importable). Isolated
mode puts no script directory on sys.path: the project directory is put there here."""

import os
import sys

if not __package__:  # run as a file
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from guardian.main import main

sys.exit(main())
