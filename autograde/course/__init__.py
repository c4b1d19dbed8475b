"""The course build: labs/ from solutions/, the lab inventory, the README's generated
blocks and the student edition."""
