"""Command line of efflab: `python -m autograde build|check|lab|grade|readme`.

    build   solutions/ -> build/source -> labs/ (fixed cell ids, nbgrader release)
    check   exit 1 if labs/ differs from a fresh build
    lab     serve JupyterLab on labs/
    grade   grade a class's submissions of one lab (autograde.grading)
    readme  regenerate the README's generated blocks (lab table, measured figures)
"""

import argparse
import os
import sys
from pathlib import Path

from autograde import build, readme
from autograde.grading.grader import Grader


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
    p_grade = sub.add_parser("grade", help="autograde a folder or zip of submissions")
    p_grade.add_argument("lab", help="lab name, e.g. lab01_layers")
    p_grade.add_argument("submissions", type=Path, help="folder or .zip, one notebook per student")
    p_grade.add_argument("--course", type=Path, default=None,
                         help="grading folder (default: grading/LAB)")
    p_grade.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p_grade.add_argument("--db", default=None, help="gradebook URL (default: SQLite in the folder)")
    p_grade.add_argument("--cell-timeout", type=int, default=60)
    p_grade.add_argument("--notebook-timeout", type=int, default=600)
    p_grade.add_argument("--memory-mb", type=int, default=3072, help="per student kernel")
    p_grade.add_argument("--fresh", action="store_true",
                         help="forget earlier runs of this lab (default: resume them)")
    p_readme = sub.add_parser("readme", help="regenerate the README's generated blocks")
    p_readme.add_argument("--check", action="store_true", help="exit 1 if they are stale")
    args = parser.parse_args(argv)
    if args.command == "readme":
        stale = readme.update(check=args.check)
        if stale:
            print("README.md: generated blocks " + ("are stale (run `python -m autograde "
                                                     "readme`)" if args.check else "updated"))
        return 1 if stale and args.check else 0
    if args.command == "lab":
        return serve_lab(args.port, args.token)
    if args.command == "grade":
        return grade(args)

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


def grade(args) -> int:
    """Run the grader; bad arguments are reported in one line."""
    course = args.course or build.ROOT / "grading" / args.lab
    try:
        grader = Grader(args.lab, course, args.workers, args.db, args.cell_timeout,
                        args.notebook_timeout, args.memory_mb)
        if args.fresh:
            grader.journal.forget()
        grader.run(args.submissions)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


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
