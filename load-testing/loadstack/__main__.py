import sys

# Before anything else is imported: a launcher told to stop while it starts up records the signal
# and stops the run with a summary, instead of dying with 143 (see loadstack.stopping).
from loadstack import stopping  # the standard library only

if stopping.is_launcher(sys.argv):
    stopping.install()

from loadstack.cli import main

sys.exit(main())
