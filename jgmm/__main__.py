import sys

from jgmm.cli import main

sys.exit(main())
