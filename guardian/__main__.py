import sys

from guardian.main import main

sys.exit(main())
