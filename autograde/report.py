"""grades.csv, a summary plot (score histogram, failures by question) and a summary text."""

import csv
from collections import Counter
from pathlib import Path


def gradebook_scores(db_url: str, lab: str, students: list[str]):
    """{student: {grade_id: (score, max)}} and the ordered grade ids, from nbgrader's gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    from autograde.grade import COURSE_ID

    scores, ids = {}, []
    with Gradebook(db_url, COURSE_ID) as gb:
        for student in students:
            try:
                nb = gb.find_submission_notebook(lab, lab, student)
            except MissingEntry:
                scores[student] = {}
                continue
            row = {g.name: (float(g.score or 0), float(g.max_score)) for g in nb.grades}
            scores[student] = row
            ids = ids or [g.name for g in sorted(nb.grades, key=lambda g: g.name)]
    return scores, ids


def write_reports(grader, results) -> Path:
    """Write grades.csv, summary.png and summary.txt into the grading folder; return the csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = grader.course / "reports" / grader.lab
    out.mkdir(parents=True, exist_ok=True)
    students = [r.student for r in results]
    scores, ids = gradebook_scores(grader.db_url, grader.lab, students)
    max_total = sum(m for _, m in next((s for s in scores.values() if s), {}).values()) or 0.0
    path = out / "grades.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "score", "max_score", "status", "reason", *ids])
        for r in results:
            row = scores.get(r.student, {})
            total = sum(s for s, _ in row.values())
            w.writerow([r.student, f"{total:g}", f"{max_total:g}", r.status, r.reason,
                        *(f"{row[i][0]:g}" if i in row else "0" for i in ids)])
    totals = [sum(s for s, _ in scores.get(r.student, {}).values()) for r in results]
    failures = Counter(i for r in results for i, (s, m) in scores.get(r.student, {}).items()
                       if s < m and m > 0 and not i.endswith("reflection"))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.5))
    ax1.hist(totals, bins=min(20, max(5, len(totals))), range=(0, max_total or 1))
    ax1.set(xlabel=f"score (of {max_total:g})", ylabel="students",
            title=f"{grader.lab}: {len(results)} submissions")
    names = [i for i in ids if i in failures] or ["(none)"]
    ax2.barh(names, [failures.get(i, 0) for i in names])
    ax2.set(xlabel="students below full marks", title="Failures by question")
    plt.tight_layout()
    fig.savefig(out / "summary.png", dpi=120)
    plt.close(fig)
    lines = [f"{grader.lab}: {len(results)} submissions, mean "
             f"{sum(totals) / max(len(totals), 1):.1f} of {max_total:g}"]
    lines += [f"  {status}: {n}" for status, n in Counter(r.status for r in results).items()]
    lines += ["failures by question:"] + [f"  {i}: {n}" for i, n in failures.most_common()]
    lines += ["students with problems:"] + [f"  {r.student}: {r.reason}" for r in results
                                            if r.status != "graded" or "Died" in r.reason
                                            or "NotRun" in r.reason]
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:3 + len(failures) + 1]))
    print(f"grades: {path}\nfeedback: {grader.course / 'feedback'}\nsummary: {out}")
    return path
