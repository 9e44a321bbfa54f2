"""`python -I -S <project>/sandbox/__main__.py`: how the supervisor and the systemd unit
start the sandbox (`python -m sandbox` works too, wherever the project is importable).

Isolated mode (-I) reads no user site, no PYTHON* variable and puts no script directory on
sys.path, so nothing the sandbox wrote can run at its next start; the project directory is
put on sys.path here, explicitly. Without `site` (-S), no `.pth` file of an installed package
runs either (a poisoned release may ship one, and `site` runs it before any SealGate code):
the site-packages directories are put on sys.path here, their `.pth` files unread.
`sandbox.main` then applies the protections before any third-party import, so a poisoned
dependency's code first runs under them.
"""

import os
import sys

if not __package__:  # run as a file
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if sys.flags.no_site:
        from sandbox.sitepaths import add_site_packages

        add_site_packages()

from sandbox.main import main

sys.exit(main())
