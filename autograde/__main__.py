"""Command line of the instructor side: `python -m autograde build|check`."""

import argparse
import sys

from autograde import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograde", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="rebuild build/source and labs/ from solutions/")
    p_build.add_argument("labs", nargs="*", help="lab names (default: all)")
    p_check = sub.add_parser("check", help="exit 1 if labs/ differs from a fresh build")
    p_check.add_argument("labs", nargs="*", help="lab names (default: all)")
    args = parser.parse_args(argv)

    try:
        if args.command == "build":
            for path in build.build(args.labs or None):
                print(f"built {path.relative_to(build.ROOT)}")
            return 0
        stale = build.stale_labs(args.labs or None)
        for path in stale:
            print(f"out of date: {path} (run `make build` and commit labs/)")
        return 1 if stale else 0
    except build.BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
