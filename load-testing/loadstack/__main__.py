import sys

from loadstack.cli import main

sys.exit(main())
