"""Command line of efflab: `python -m autograde build|check|lab`."""

import argparse
import os
import sys
from pathlib import Path

from autograde import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograde", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="rebuild build/source and labs/ from solutions/")
    p_build.add_argument("labs", nargs="*", help="lab names (default: all)")
    p_build.add_argument("--keep-existing", action="store_true",
                         help="only write lab files that are missing (never overwrite work)")
    p_check = sub.add_parser("check", help="exit 1 if labs/ differs from a fresh build")
    p_check.add_argument("labs", nargs="*", help="lab names (default: all)")
    p_lab = sub.add_parser("lab", help="serve JupyterLab on labs/ (nbgrader extension on)")
    p_lab.add_argument("--port", type=int, default=8888)
    p_lab.add_argument("--token", default=None, help="fixed access token (default: random)")
    args = parser.parse_args(argv)
    if args.command == "lab":
        return serve_lab(args.port, args.token)

    try:
        if args.command == "build":
            written = build.build(args.labs or None, keep_existing=args.keep_existing)
            for path in written:
                print(f"built {path.relative_to(build.ROOT)}")
            if args.keep_existing and not written:
                print("labs/ already has every lab; existing notebooks left as they are")
            return 0
        stale = build.stale_labs(args.labs or None)
        for path in stale:
            print(f"out of date: {path} (run `make build` and commit labs/)")
        return 1 if stale else 0
    except build.BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def serve_lab(port: int, token: str | None) -> int:
    """Replace this process with JupyterLab serving labs/ on localhost."""
    jupyter = str(Path(sys.executable).parent / "jupyter")
    cmd = [jupyter, "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.root_dir={build.LABS}"]
    if token is not None:
        cmd.append(f"--IdentityProvider.token={token}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # JupyterLab refuses root without it
    print("Starting JupyterLab on labs/; open the http://127.0.0.1 URL printed below "
          "(Ctrl-C to stop).", flush=True)
    os.execv(jupyter, cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
