"""nbgrader configuration of the efflab course (instructor side)."""

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.course_id = "efflab"
# solutions/*/*.py are built into nbgrader source notebooks here (python -m autograde build)
c.CourseDirectory.source_directory = "build/source"
# ... and released to the students into labs/, which is committed
c.CourseDirectory.release_directory = "labs"

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# Kernel start + `import torch` takes ~2 s; no single lab cell should need a minute.
c.Execute.timeout = 60
