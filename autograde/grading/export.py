"""After hand grading: each lab's grades as CSV, the course's as one CSV, feedback again.

The gradebook holds automatic scores (test cells) and a person's scores and
comments (reflections, via the formgrader). `export` reads both: per lab,
grading/LAB/reports/LAB/final.csv with automatic, by hand, total and what still
waits for hand grading; for the course, grading/course.csv with one column per
lab. Feedback is generated again, so students see the hand-given points and comments.
"""

import csv
import json
from collections.abc import Callable
from pathlib import Path

from autograde.course import build
from autograde.grading.feedback import generate as feedback_pages
from autograde.grading.journal import Journal
from autograde.nbgrader_seam import cells, command, gradebook

COLUMNS = ["student", "automatic", "by_hand", "total", "max_score", "needs_hand_grading"]


def course_db(course: Path) -> str:
    """The gradebook URL a grading folder was graded with."""
    config = json.loads((course / command.CONFIG_FILE).read_text())
    return config["CourseDirectory"]["db_url"]


def lab_rows(db_url: str, lab: str) -> list[dict]:
    """One row per student of the gradebook: automatic, by hand, total, pending ids."""
    with gradebook.connect(db_url) as gb:
        max_score = float(gb.find_assignment(lab).max_score)
        students = sorted(s.id for s in gb.students)
    marks, _ = gradebook.scores(db_url, lab, students)  # the one reader of grades
    rows = []
    for student in students:
        got = marks[student]
        auto = sum(m.score for m in got.values() if not m.manual)
        hand = sum(m.score for m in got.values() if m.manual)
        pending = sorted((gid for gid, m in got.items() if m.pending), key=cells.natural)
        rows.append({"student": student, "automatic": auto, "by_hand": hand,
                     "total": auto + hand, "max_score": max_score,
                     "needs_hand_grading": " ".join(pending)})
    return rows


def _write(path: Path, header: list[str], rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, header)
        w.writeheader()
        for row in rows:
            w.writerow({k: f"{v:g}" if isinstance(v, float) else v for k, v in row.items()})
    return path


def what_was_used(folder: Path, lab: str, rows: list[dict]) -> str:
    """One line on what a lab's grades stand on: points given by hand, answers still
    waiting for them, students graded again in the formgrader, and students whose
    autograded notebook is missing (their automatic points are the gradebook's, and their
    feedback cannot be made)."""
    hand = sum(1 for r in rows if r["by_hand"])
    waiting = sum(1 for r in rows if r["needs_hand_grading"])
    missing = [r["student"] for r in rows
               if not (folder / "autograded" / r["student"] / lab / f"{lab}.ipynb").is_file()]
    line = (f"{lab}: {len(rows)} students from the gradebook; {hand} with points given by "
            f"hand, {waiting} still waiting for hand grading (counted as 0)")
    regraded = [r.student for r in Journal(folder / "journal" / lab).all() if r.regraded]
    if regraded:
        line += f"; graded again in the formgrader: {', '.join(regraded)}"
    if missing:
        line += (f"; no autograded notebook for {', '.join(missing)}: their automatic points "
                 "are the gradebook's and they get no new feedback (grade them again with "
                 "`make grade`)")
    return line


def export(grading: Path, labs: list[str] | None = None, feedback: bool = True,
           env: dict | None = None, say: Callable[[str], None] = print) -> list[Path]:
    """Write every graded lab's final.csv and grading/course.csv; returns their paths and
    says, per lab, what the grades stand on (`what_was_used`)."""
    graded = [lab for lab in build.lab_names() if (grading / lab / command.CONFIG_FILE)
              .is_file()]
    if not graded:
        raise ValueError(f"no graded lab in {grading} (run `make grade` first)")
    unknown = sorted(set(labs or []) - set(graded))
    if unknown:
        raise ValueError(f"not graded yet: {', '.join(unknown)} (graded: "
                         f"{', '.join(graded) or 'none'}; run `make grade` first)")
    written, course = [], {}
    for lab in labs or graded:
        folder = grading / lab
        rows = lab_rows(course_db(folder), lab)
        say(what_was_used(folder, lab, rows))
        written.append(_write(folder / "reports" / lab / "final.csv", COLUMNS, rows))
        for row in rows:
            course.setdefault(row["student"], {})[lab] = row
        if feedback and any((folder / "autograded").glob(f"*/{lab}")):
            feedback_pages(folder, lab, extra_env=env)
    names = labs or graded
    header = ["student", *names, "total", "max_score", "needs_hand_grading"]
    maxima = {lab: next((r[lab]["max_score"] for r in course.values() if lab in r), 0.0)
              for lab in names}
    rows = [{"student": student, **{lab: by_lab[lab]["total"] if lab in by_lab else 0.0
                                    for lab in names},
             "total": sum(r["total"] for r in by_lab.values()),
             "max_score": sum(maxima.values()),
             "needs_hand_grading": " ".join(f"{lab}:{r['needs_hand_grading']}"
                                            for lab, r in by_lab.items()
                                            if r["needs_hand_grading"])}
            for student, by_lab in sorted(course.items())]
    written.append(_write(grading / "course.csv", header, rows))
    return written
