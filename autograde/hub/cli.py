"""`python -m autograde hub setup|serve|release|collect|return`: a course on one machine's
JupyterHub, from the instructor's side (docs/instructors.md)."""

import sys
from pathlib import Path

from autograde.course import build
from autograde.hub import configure, exchange, serve
from autograde.hub.course import HubCourse, HubError


def add_hub_command(sub) -> None:
    """The `hub` subcommand, with one subcommand per step, on an argparse subparsers."""
    p_hub = sub.add_parser("hub", help="a course on JupyterHub: set up, serve, release, "
                                       "collect, return feedback")
    steps = p_hub.add_subparsers(dest="step", required=True)
    p_setup = steps.add_parser("setup", help="write (or update) the hub course in a folder "
                                             "(as root)")
    p_setup.add_argument("hub", type=Path, help="the hub course's folder, e.g. /srv/efflab")
    p_setup.add_argument("--instructor", required=True, help="the instructor's local account")
    p_setup.add_argument("--students", nargs="+", required=True, metavar="ACCOUNT",
                         help="the students' local accounts")
    p_setup.add_argument("--labs", nargs="*", default=None, metavar="LAB",
                         help="labs in the students' edition (default: every released lab)")
    p_serve = steps.add_parser("serve", help="run JupyterHub until Ctrl-C (as root)")
    p_serve.add_argument("hub", type=Path)
    p_serve.add_argument("--port", type=int, default=8000)
    p_serve.add_argument("--ip", default="127.0.0.1",
                         help="address to serve on (default: this machine only; put TLS "
                              "in front of anything else)")
    for step, what in (("release", "hand a lab out through the exchange"),
                       ("collect", "collect the students' latest submissions of a lab")):
        p = steps.add_parser(step, help=what)
        p.add_argument("hub", type=Path)
        p.add_argument("lab")
    p_return = steps.add_parser("return", help="return a graded lab's feedback through the "
                                               "exchange (as root)")
    p_return.add_argument("hub", type=Path)
    p_return.add_argument("lab")
    p_return.add_argument("--grading", type=Path, default=build.ROOT / "grading",
                          help="folder holding one grading folder per lab (default: grading)")
    p_return.add_argument("--course", type=Path, default=None,
                          help="the lab's own grading folder (default: GRADING/LAB)")


def main(args) -> int:
    """Run one hub step; its errors in one paragraph and exit 2."""
    try:
        return _step(args)
    except HubError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _step(args) -> int:
    if args.step == "setup":
        hub = HubCourse(args.hub.resolve(), args.instructor, tuple(args.students))
        for note in configure.setup(hub, args.labs):
            print(note)
        print(f"hub course ready in {hub.root}: `python -m autograde hub serve {hub.root}`")
        return 0
    hub = HubCourse.load(args.hub)
    if args.step == "serve":
        return serve.serve(hub, args.port, args.ip)
    if args.step == "release":
        print(f"released {args.lab} to {exchange.release(hub, args.lab)}: students fetch it "
              "in their Assignment List")
        return 0
    if args.step == "collect":
        found = exchange.collect(hub, args.lab)
        for student, stamp in found.items():
            print(f"  {student}: submitted {stamp}")
        print(f"collected {len(found)} submissions of {args.lab} into {hub.submitted}; "
              f"grade them with `python -m autograde grade {args.lab} {hub.submitted}`")
        return 0
    grading = args.course or args.grading / args.lab
    sent = exchange.return_feedback(hub, args.lab, grading.resolve())
    print(f"returned {args.lab}'s feedback to {len(sent)} students ({', '.join(sent)}): "
          "they see it in their Assignment List (Fetch Feedback)")
    return 0
