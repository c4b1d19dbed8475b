"""Grading a class: `python -m autograde grade LAB SUBMISSIONS`.

    grader       the pipeline: warm workers grade, the journal records, then reports
    folder       a grading folder: release and intake before, feedback and reports after
    settings     the grading settings, one record; outcome: what happened in the kernel
    course_folder  the grading folder, passed to nbgrader's steps as config
    preflight    one sandboxed kernel must start before anyone is graded
    submissions  one notebook per student from a folder or zip, refusing what could harm
    journal      one finished student per file, so a killed run resumes
    workers      warm worker processes that run nbgrader's autograde
    executor     nbgrader's Execute step in the sandbox: judged cells, probe, output budget
    judged_cell  one test cell judged in the grader while the kernel answers
    integrity_probe  the probe run in the kernel after a kernel-run test cell, and its
                 verdict: the cell's pass counts only if it says clean
    output_budget  bytes of output a notebook may keep
    sanitize     nothing a student wrote runs in a reader's browser
    feedback     feedback shows a failed test's message, not its code
    report       grades.csv, summary.png, summary.txt
    audit        code a student wrote that reaches past the refusals, for review
    similarity   answers copied from efflib, the checks or another student, for review
"""
