"""Command line of efflab: `python -m autograde build|check|lab|grade|readme`.

    build   solutions/ -> build/source -> labs/ (fixed cell ids, nbgrader release)
    check   exit 1 if labs/ differs from a fresh build
    lab     serve JupyterLab on the student's work/ folder (copied once from labs/)
    grade   grade a class's submissions of one lab (autograde.grading)
    formgrader  serve nbgrader's formgrader on a graded lab, to grade reflections by hand
    regrade  grade one student of a graded lab again (the formgrader's Autograde button)
    export  after hand grading: final grades per lab and for the course, feedback again
    readme  regenerate the README's generated blocks (lab table, measured figures)
    student-edition  write what students get (labs, efflib, visible checks) into a folder
    hub     a course on JupyterHub: setup, serve, release, collect, return (autograde.hub)
"""

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path

from autograde.course import build, edition, readme
from autograde.grading import export, regrade, settings
from autograde.grading.grader import Grader
from autograde.grading.lock import Busy, grading_lock
from autograde.grading.preflight import SandboxError
from autograde.hub import cli as hub_cli
from autograde.nbgrader_seam import gradebook
from autograde.nbgrader_seam.command import NbgraderError
from autograde.student import lab_server, student_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograde", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="rebuild build/source and labs/ from solutions/")
    p_build.add_argument("labs", nargs="*", help="lab names (default: all)")
    p_build.add_argument("--keep-existing", action="store_true",
                         help="only write lab files that are missing (never overwrite work)")
    p_check = sub.add_parser("check", help="exit 1 if labs/ differs from a fresh build")
    p_check.add_argument("labs", nargs="*", help="lab names (default: all)")
    student_cli.add_lab_command(sub)
    p_form = sub.add_parser("formgrader", help="grade reflections by hand in the browser")
    p_form.add_argument("lab", help="a lab graded with `grade` before")
    _grading_options(p_form)
    p_form.add_argument("--port", type=int, default=8889)
    p_form.add_argument("--token", default=None)
    p_regrade = sub.add_parser("regrade", help="grade one student again with the settings "
                                               "of the lab's last grade run")
    p_regrade.add_argument("lab", help="a lab graded with `grade` before")
    p_regrade.add_argument("student", help="the student's id, as in grades.csv")
    _grading_options(p_regrade)
    p_export = sub.add_parser("export", help="final grades as CSV (per lab and course) and "
                                             "feedback with the hand-given points")
    p_export.add_argument("labs", nargs="*", help="lab names (default: every graded lab)")
    p_export.add_argument("--grading", type=Path, default=build.ROOT / "grading",
                          help="folder holding one grading folder per lab (default: grading)")
    p_export.add_argument("--no-feedback", action="store_true")
    p_grade = sub.add_parser("grade", help="autograde a folder or zip of submissions")
    p_grade.add_argument("lab", help="lab name, e.g. lab01_layers")
    p_grade.add_argument("submissions", type=Path, help="folder or .zip, one notebook per student")
    _grading_options(p_grade)
    p_grade.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p_grade.add_argument("--db", default=None, help="gradebook URL (default: SQLite in the folder)")
    settings.add_options(p_grade)
    p_grade.add_argument("--scheduler", metavar="tcp://HOST:8786",
                         help="grade on this Dask scheduler's workers (default: a local "
                              "pool of --workers processes)")
    p_grade.add_argument("--due", type=due_date, default=None, metavar="'YYYY-MM-DD HH:MM'",
                         help="the lab's due date, UTC unless a zone follows (e.g. "
                              "'2026-12-10 17:00 Europe/Berlin', '2026-12-10T17:00+01:00'): "
                              "a submission whose exchange time (timestamp.txt, as "
                              "nbgrader collect leaves it) is later is marked late in "
                              "grades.csv; kept in the gradebook")
    p_grade.add_argument("--fresh", action="store_true",
                         help="forget earlier runs of this lab (default: resume them)")
    p_grade.add_argument("--secret", type=Path, default=None, metavar="FILE",
                         help="the course's secret, which hidden cases and the held-out "
                              "digits are drawn from (default: COURSE/secret, made on first "
                              "use); keep it out of every student's reach")
    p_edition = sub.add_parser("student-edition", help="write the student edition (labs, "
                               "efflib, visible checks; no solutions) into a folder")
    p_edition.add_argument("out", type=Path, help="a new or empty folder, or an edition to "
                                                  "update (e.g. the students' git repository)")
    p_edition.add_argument("--labs", nargs="*", default=None, metavar="LAB",
                           help="only these labs (default: every lab in labs/)")
    hub_cli.add_hub_command(sub)
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
        return student_cli.serve_lab(args)
    if args.command == "hub":
        return hub_cli.main(args)
    if args.command == "formgrader":
        return serve_formgrader(args)
    if args.command == "export":
        try:
            paths = export.export(args.grading, args.labs or None, not args.no_feedback)
        except (ValueError, NbgraderError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        for path in paths:
            print(f"wrote {path}")
        return 0
    if args.command == "grade":
        return grade(args)
    if args.command == "regrade":
        return regrade.main(args.lab, course_of(args), args.student)
    if args.command == "student-edition":
        try:
            written = edition.write(args.out, args.labs)
        except edition.EditionError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"wrote the student edition ({len(written)} files) to {args.out}: commit and "
              "push it where students `git pull` from (docs/instructors.md)")
        return 0

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


def _grading_options(parser) -> None:
    """Where a lab's grading folder is: GRADING/LAB, as `export` reads it, or one named."""
    parser.add_argument("--grading", type=Path, default=build.ROOT / "grading",
                        help="folder holding one grading folder per lab (default: grading)")
    parser.add_argument("--course", type=Path, default=None,
                        help="this lab's own grading folder (default: GRADING/LAB)")


def course_of(args) -> Path:
    return args.course or args.grading / args.lab


def grade(args) -> int:
    """Run the grader; bad arguments are reported in one line."""
    course = course_of(args)
    try:
        grader = Grader(args.lab, course, args.workers, args.db, settings.from_options(args),
                        scheduler=args.scheduler, secret_file=args.secret, due=args.due)
        with grading_lock(grader.course, "run it again"):
            if args.fresh:
                grader.journal.forget()
            grader.run(args.submissions)
    except (ValueError, FileNotFoundError, SandboxError, Busy) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def due_date(text: str) -> datetime:
    """A due date from the command line (gradebook.parse_due), or why it is not one."""
    try:
        return gradebook.parse_due(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def serve_formgrader(args) -> int:
    """nbgrader's formgrader on a lab's course folder, with the venv's tools on PATH."""
    course = course_of(args)
    if not (course / "nbgrader_config.json").is_file():
        print(f"error: {course} has no graded class yet: run `make grade LAB={args.lab} "
              "SUBMISSIONS=...` first.", file=sys.stderr)
        return 2
    export_hint = f"make export LABS={args.lab}" if course == args.grading / args.lab else \
        f".venv/bin/python -m autograde export {args.lab} --grading {course.parent}"
    notes = [f"Formgrader: open Nbgrader > Formgrader, then Manage Submissions > {args.lab}.",
             f"Afterwards `{export_hint}` writes the grades."]
    return lab_server.serve(course, args.port, args.token, "instructor", notes, cwd=course)


if __name__ == "__main__":
    sys.exit(main())
