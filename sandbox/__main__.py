import sys

from sandbox.main import main

sys.exit(main())
