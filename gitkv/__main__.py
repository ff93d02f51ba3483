import sys

from gitkv.cli import main

sys.exit(main())
