"""Instructor side of efflab: reference checks, lab build and grading."""
