"""`python -m projections [--host H] [--port P]`: the service under uvicorn.

As `oppstream serve projections` runs it (until the CLI names it).
"""

import argparse
import sys

from chassis.serving import serve


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m projections", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    from projections.main import SERVICE

    return serve(SERVICE, args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
