"""`python -I <project>/sandbox/__main__.py`: how the supervisor and the systemd unit start
the sandbox (`python -m sandbox` works too, wherever the project is importable).

Isolated mode (-I) reads no user site, no PYTHON* variable and puts no script directory on
sys.path, so nothing the sandbox wrote can run at its next start; the project directory is
put on sys.path here, explicitly. `sandbox.main` then applies the protections before any
third-party import.
"""

import os
import sys

if not __package__:  # run as a file
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sandbox.main import main

sys.exit(main())
