"""The student's command line: `python -m autograde lab`.

The full command line (`autograde.__main__`) takes its `lab` command from here; the
student edition (`python -m autograde student-edition`) ships this module as its
`__main__`, since it holds nothing of the instructor's commands.
"""

import argparse
import sys
from pathlib import Path

from autograde.student import lab_server, workspace

INSTRUCTOR_COMMANDS = ("build", "check", "grade", "formgrader", "export", "readme",
                       "student-edition", "regrade", "hub")


def add_lab_command(sub) -> None:
    """The `lab` subcommand on an argparse subparsers object."""
    p_lab = sub.add_parser("lab", help="serve JupyterLab on work/ (a copy of labs/ made once)")
    p_lab.add_argument("--port", type=int, default=8888)
    p_lab.add_argument("--token", default=None, help="fixed access token (default: random)")
    p_lab.add_argument("--fresh", nargs="*", default=[], metavar="LAB",
                       help="take a fresh copy of these labs (your old copy is kept)")
    p_lab.add_argument("--work", type=Path, default=workspace.WORK,
                       help=argparse.SUPPRESS)


def serve_lab(args) -> int:
    """Fill work/ from labs/ where needed, then serve JupyterLab there."""
    try:
        notices = workspace.prepare(args.work, fresh=tuple(args.fresh))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    notes = [n.message for n in notices]
    notes.append(f"Your notebooks: {args.work}/labNN_topic/labNN_topic.ipynb. Hand in that "
                 "file, under that name. (Nbgrader's Assignment List and Course List are "
                 "off here: they work on a course JupyterHub, which hands labs out and "
                 "takes them in.)")
    return lab_server.serve(args.work, args.port, args.token, "student", notes)


def main(argv: list[str] | None = None) -> int:
    """The student edition's command line."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in INSTRUCTOR_COMMANDS:
        print(f"error: `{argv[0]}` is an instructor's command; this is the student edition "
              "of the course, which has only `python -m autograde lab` (`make lab`).",
              file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="python -m autograde",
                                     description="The course's labs in JupyterLab.")
    add_lab_command(parser.add_subparsers(dest="command", required=True))
    return serve_lab(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
