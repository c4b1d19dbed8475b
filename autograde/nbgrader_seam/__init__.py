"""Where efflab meets nbgrader, one job a module.

- cells: answer and test cells as nbgrader marks them, grade ids, a side cell of the
  grader's own run, an error output that fails a test cell;
- command: the course id, the grading folder's config (also written for the nbgrader
  commands an instructor runs) and the nbgrader CLI;
- gradebook: students, zeroed scores and every student's marks in the gradebook;
- hub_formgrader: a course hub's formgrader, whose Autograde is refused (unsandboxed).
"""
