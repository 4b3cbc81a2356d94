"""Entry point of a worker process (started by the supervisor only)."""

import sys

from natsd.worker.server import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
