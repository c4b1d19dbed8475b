"""What a grading run reports: why marks were lost (short in grades.csv, whole in
reasons.txt), grades.csv, summary.png and summary.txt."""

import csv
from collections import Counter
from pathlib import Path

import matplotlib
import nbformat

from autograde.course import build
from autograde.grading import outcome
from autograde.grading.journal import Result
from autograde.nbgrader_seam.cells import is_test_cell, natural

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the file-only backend
from matplotlib.ticker import MaxNLocator  # noqa: E402

SHORT = 110  # characters of a reason in grades.csv; the whole one is in reasons.txt


def failed_cells(autograded: Path) -> dict[str, list[str]]:
    """{why: grade ids} of the failed test cells of an autograded notebook (the grader's
    copy), each why the error's name and message, so a message shared by several
    questions is read once."""
    nb = nbformat.read(autograded, as_version=4)
    lost: dict[str, list[str]] = {}
    for cell in nb.cells:
        if is_test_cell(cell):
            errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
            if errors:
                why = f"{errors[0].ename}: {str(errors[0].evalue).strip()}"
                lost.setdefault(why, []).append(cell.metadata["nbgrader"]["grade_id"])
    return lost


def lost_marks(autograded: Path) -> str:
    """Why test cells failed, each question once and its reason short (grades.csv)."""
    if not autograded.exists():
        return "no autograded notebook"
    return "; ".join(f"{', '.join(ids)}: {short(why)}"
                     for why, ids in failed_cells(autograded).items())


def whole_reasons(autograded: Path) -> str:
    """Why test cells failed, every reason whole (reasons.txt)."""
    if not autograded.exists():
        return "no autograded notebook"
    return "\n".join(f"{', '.join(ids)}: {why}" for why, ids in failed_cells(autograded).items())


def short(why: str) -> str:
    """The first line of a reason, cut at a word near SHORT characters, marked when cut."""
    line = why.splitlines()[0] if why else ""
    if len(line) <= SHORT:
        return line
    cut = line.rfind(" ", 0, SHORT)
    return line[:cut if cut > SHORT // 2 else SHORT].rstrip(" ,;:") + " …"


def formgrader_hint(lab: str, course: Path | None) -> str:
    """The command that opens the formgrader on this lab, as typed at the repository root."""
    if course is None or course.resolve() == (build.ROOT / "grading" / lab).resolve():
        return f"make formgrader LAB={lab}"
    return f".venv/bin/python -m autograde formgrader {lab} --course {course}"


def _troubled(course: Path | None, lab: str, student: str) -> bool:
    """Whether the student's kernel stopped before the end of their last graded run, or the
    integrity probe found it tampered with."""
    ran = outcome.read(course, lab, student) if course is not None else None
    return ran is not None and bool(ran.kernel_died or ran.tampered)


def write_reports(out: Path, lab: str, results: list[Result], scores: dict,
                  ids: list[str], similar: dict[str, str] | None = None,
                  flagged: dict[str, str] | None = None, whole: dict[str, str] | None = None,
                  course: Path | None = None, late: dict[str, float] | None = None) -> Path:
    """grades.csv, summary.png, summary.txt and reasons.txt in `out`, from each student's
    {grade_id: Mark} in `scores`; returns the csv's path. A cell that waits for hand
    grading is listed under needs_hand_grading, and its column says "pending";
    `similar` is each flagged student's answers that resemble others (grading.similarity),
    `flagged` their code that reaches past the refusals (grading.audit), `whole` the
    reasons of lost marks in full (the csv's are short), `late` the seconds by which each
    late submission missed the lab's due date (nbgrader's lateness, from the gradebook)."""
    similar, flagged, whole, late = similar or {}, flagged or {}, whole or {}, late or {}
    out.mkdir(parents=True, exist_ok=True)
    max_total = sum(m.max for m in next((s for s in scores.values() if s), {}).values()) or 0.0
    path = out / "grades.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "score", "max_score", "status", "needs_hand_grading", "reason",
                    "similar_to", "flagged_code", "late", *ids])
        for r in results:
            row = scores.get(r.student, {})
            total = sum(m.score for m in row.values())
            pending = " ".join(i for i in ids if i in row and row[i].pending)
            w.writerow([r.student, f"{total:g}", f"{max_total:g}", r.status, pending, r.reason,
                        similar.get(r.student, ""), flagged.get(r.student, ""),
                        late_text(late[r.student]) if r.student in late else "",
                        *(_cell(row.get(i)) for i in ids)])
    totals = [sum(m.score for m in scores.get(r.student, {}).values()) for r in results]
    failures = Counter(i for r in results for i, m in scores.get(r.student, {}).items()
                       if m.score < m.max and m.max > 0 and not m.manual)
    waiting = sum(any(m.pending for m in scores.get(r.student, {}).values()) for r in results)
    _plot(out / "summary.png", lab, len(results), totals, max_total, ids, failures)
    lines = [f"{lab}: {len(results)} submissions, mean "
             f"{sum(totals) / max(len(totals), 1):.1f} of {max_total:g}"]
    lines += [f"  {status}: {n}" for status, n in Counter(r.status for r in results).items()]
    regraded = [f"{r.student} at {r.regraded}" for r in results if r.regraded]
    if regraded:  # what `grade` did not do itself: the formgrader's Autograde
        lines.append(f"graded again in the formgrader: {', '.join(regraded)}")
    if late:
        lines.append(f"submitted after the due date: {len(late)} ("
                     + ", ".join(f"{s} by {late_text(t)}" for s, t in sorted(late.items()))
                     + ")")
    if waiting:
        lines.append(f"needs hand grading: {waiting} of {len(results)} (scores above count "
                     f"those answers as 0 until then; `{formgrader_hint(lab, course)}`)")
    if similar or flagged:
        lines.append(f"for review: {len(similar)} of {len(results)} students with similar "
                     f"answers, {len(flagged)} with code that reaches past the refusals "
                     "(similar_to and flagged_code in grades.csv; similarity.html)")
    by_count = sorted(failures.items(), key=lambda item: (-item[1], natural(item[0])))
    lines += ["failures by question:", *(f"  {i}: {n}" for i, n in by_count)] if by_count \
        else ["failures by question: none"]
    reasons_txt = [f"{r.student} ({r.status}):\n" + _indent(whole.get(r.student) or r.reason)
                   for r in results if whole.get(r.student) or r.reason]
    (out / "reasons.txt").write_text(
        f"{lab}: why marks were lost, each reason whole (grades.csv has them short)\n\n"
        + ("\n\n".join(reasons_txt) if reasons_txt else "no marks lost") + "\n")
    problems = [f"  {r.student}: {r.reason}" for r in results
                if r.status != "graded" or _troubled(course, lab, r.student)]
    lines += ["students with problems:", *problems] if problems else \
        ["students with problems: none"]
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    head = lines[:1 + len(Counter(r.status for r in results)) + bool(regraded) + bool(late)
                 + bool(waiting)]
    print("\n".join(head + [line for line in lines if line.startswith("students with")]
                    + problems))
    return path


def late_text(seconds: float) -> str:
    """'2 d 3 h 05 min' late (a part of a minute counts as a minute)."""
    minutes = max(1, -(-int(seconds) // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return " ".join(part for part in (f"{days} d" if days else "", f"{hours} h" if hours
                                      else "", f"{minutes:02d} min" if hours or days
                                      else f"{minutes} min") if part)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _cell(mark) -> str:
    if mark is None:
        return "0"
    return "pending" if mark.pending else f"{mark.score:g}"


def _plot(path: Path, lab: str, n: int, totals: list[float], max_total: float,
          ids: list[str], failures: Counter) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.5))
    ax1.hist(totals, bins=min(20, max(5, len(totals))), range=(0, max_total or 1),
             edgecolor="white")
    ax1.set(xlabel=f"score (of {max_total:g})", ylabel="students",
            title=f"{lab}: {n} submissions")
    ax1.yaxis.set_major_locator(MaxNLocator(integer=True))  # whole students
    names = [i for i in ids if i in failures] or ["(none)"]
    ax2.barh(names, [failures.get(i, 0) for i in names], edgecolor="white")
    ax2.set(xlabel="students below full marks", title="Failures by question")
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    plt.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
