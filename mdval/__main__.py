import sys

from mdval.cli import main

sys.exit(main())
