"""A notebook's output budget: bytes kept as they arrive, the rest dropped, errors never."""

from nbformat.notebooknode import NotebookNode


class OutputBudget:
    """Bytes of output a notebook may keep; what comes after is dropped, errors never."""

    def __init__(self, limit: int):
        self.limit, self.used, self.truncated = limit, 0, False

    def admit(self, msg: dict, outs: list) -> bool:
        if msg.get("msg_type") == "error":  # errors decide grades
            return True
        self.used += len(str(msg.get("content", "")))
        if self.used <= self.limit:
            return True
        if not self.truncated:
            self.truncated = True
            outs.append(NotebookNode(output_type="stream", name="stderr",
                                     text=f"[output beyond {self.limit:,d} bytes dropped "
                                          "by the grader]\n"))
        return False
