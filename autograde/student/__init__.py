"""The student's side: JupyterLab with the course's settings, the work folder, and
Validate's one line per question."""
