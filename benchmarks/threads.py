"""`plait bench threads`, for `make bench-results`: the cases live in python/plait/bench/threads.py,
so that an installed plait runs them too. Flags as `plait bench`: --quick, --smoke, --repeats N,
--json [PATH], --plot PNG."""

import sys

from plait.bench._cli import main

if __name__ == "__main__":  # the process pools' spawned workers import this file as __mp_main__
    raise SystemExit(main(["threads", *sys.argv[1:]]))
