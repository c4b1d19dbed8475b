"""Grading a class: `python -m autograde grade LAB SUBMISSIONS`.

    grader       the pipeline: release, intake, warm workers, journal, feedback, reports
    preflight    one sandboxed kernel must start before anyone is graded
    submissions  one notebook per student from a folder or zip, refusing what could harm
    journal      one finished student per file, so a killed run resumes
    workers      warm worker processes that run nbgrader's autograde
    executor     nbgrader's Execute step in the sandbox: judged cells, probe, output budget
    judged_cell  one test cell judged in the grader while the kernel answers
    probed_cell  a kernel-run test cell's pass counts only if the integrity probe agrees
    output_budget  bytes of output a notebook may keep
    sanitize     nothing a student wrote runs in a reader's browser
    scratch      a student's scratch folder and the kernel's policy environment
    feedback     feedback shows a failed test's message, not its code
    report       grades.csv, summary.png, summary.txt
    audit        code a student wrote that reaches past the refusals, for review
    similarity   answers copied from efflib, the checks or another student, for review
"""
