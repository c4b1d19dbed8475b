"""A course on JupyterHub: students log in, nbgrader's exchange carries labs out and
submissions and feedback back, and efflab's grader grades what was collected.

`python -m autograde hub setup|serve|release|collect|return` (autograde.hub.cli) on one
machine: hub.course says where everything lives, hub.configure writes it, hub.serve
runs JupyterHub, hub.exchange moves labs and feedback through nbgrader's exchange, and
hub.access checks who can read what. docs/instructors.md has the instructor's guide.
"""
