import sys

from pearlnet.cli import main

sys.exit(main())
