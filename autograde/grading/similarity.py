"""Copying flagged, not hidden: every answer cell against efflib and the checks, and
against every other student's same cell, by winnowed fingerprints (Schleimer, Wilkerson
and Aiken, "Winnowing: local algorithms for document fingerprinting", SIGMOD 2003: the
method of MOSS).

Code is read as tokens with the names it binds itself replaced by one symbol, so that
renaming variables and rewriting comments or layout changes nothing; attribute names
(`torch.round`, `.unfold`) and keywords stay. Every run of K tokens is hashed, and
winnowing keeps the smallest hash of each WINDOW consecutive ones, so that any shared
run of K + WINDOW - 1 tokens is certain to share a fingerprint. What the starter code of
the cell already holds is not counted, and answers too short to say anything are not
compared. A flag is evidence for an instructor to read side by side, never a mark.
"""

import ast
import builtins
import hashlib
import html
import io
import keyword
import re
import tokenize
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import nbformat
from nbgrader.utils import is_grade, is_solution

K = 12          # tokens hashed together: shorter shared runs are idiom, not copying
WINDOW = 6      # any shared run of K + WINDOW - 1 = 17 tokens is certain to be seen
THRESHOLD = 0.75  # share of an answer's fingerprints found elsewhere that is flagged:
# the course's own solutions reach at most 0.66 against efflib (tests/test_grading_similarity)
MIN_FINGERPRINTS = 10  # fewer (about 40 tokens of the student's own) is not compared
COMMON = 0.5    # in at least this share of a class of 10 or more, a student pair's shared
# fingerprint is the question's idiom (efflib's and the checks' code counts however many paste it)
MAX_CHARS = 50_000  # of one cell (an answer is a few thousand): a longer one is read to here
ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("efflib", "autograde/checks")  # what a student could copy from the edition
_NAMES = set(keyword.kwlist) | set(dir(builtins))
_STRINGS = {tokenize.STRING, getattr(tokenize, "FSTRING_START", tokenize.STRING)}
_FALLBACK = re.compile(r"[A-Za-z_]\w*|\d[\w.]*|\S")


@dataclass(frozen=True)
class Code:
    """One piece of source and its fingerprints: hash -> the source lines it covers."""
    name: str
    source: str
    prints: dict[int, frozenset[int]]

    def __len__(self) -> int:
        return len(self.prints)


@dataclass(frozen=True)
class Match:
    """An answer that shares `score` of its fingerprints with `other` (a student or an
    efflib/check function); `lines` and `other_lines` are the shared lines, 1-based."""
    student: str
    question: str
    other: str
    score: float
    lines: frozenset[int]
    other_lines: frozenset[int]


def _bound_names(source: str) -> set[str] | None:
    """The names the code binds itself (variables, parameters, functions, classes, import
    aliases), or None when it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return names


def _name(word: str, after_dot: bool, own: set[str] | None) -> str:
    """V for a name the code binds itself (any name but Python's own where it does not
    parse); attribute names and everything else as written."""
    if after_dot or word in _NAMES:
        return word
    return "V" if own is None or word in own else word


def tokens(source: str) -> list[tuple[str, int]]:
    """(normalised token, line) pairs: the code's own names become V, strings S, numbers
    N, a block string's text its words; comments, layout and IPython's %magic and !shell
    lines are dropped."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line
             for line in source[:MAX_CHARS].splitlines()]
    text = "\n".join(lines) + "\n"
    own = _bound_names(text)
    out: list[tuple[str, int]] = []
    try:
        for t in tokenize.generate_tokens(io.StringIO(text).readline):
            after_dot = bool(out) and out[-1][0] == "."
            if t.type == tokenize.NAME:
                out.append((_name(t.string, after_dot, own), t.start[0]))
            elif t.type in _STRINGS and "\n" in t.string:  # a block: C source, prose
                out += _words(t.string, t.start[0])
            elif t.type in _STRINGS:
                out.append(("S", t.start[0]))
            elif t.type == tokenize.NUMBER:
                out.append(("N", t.start[0]))
            elif t.type == tokenize.OP:
                out.append((t.string, t.start[0]))
    except (tokenize.TokenError, SyntaxError, RecursionError):
        out = []
        for number, line in enumerate(lines, 1):
            for word in _FALLBACK.findall(line.split("#")[0]):
                after_dot = bool(out) and out[-1][0] == "."
                if word[0].isalpha() or word[0] == "_":
                    word = _name(word, after_dot, own)
                elif word[0].isdigit():
                    word = "N"
                out.append((word, number))
    return out


def _words(text: str, first: int) -> list[tuple[str, int]]:
    """The tokens of a block of text (C in a string), kept as written, with their lines."""
    return [(word, first + number) for number, line in enumerate(text.splitlines())
            for word in _FALLBACK.findall(line)]


def fingerprint(name: str, source: str, ignore: frozenset[int] = frozenset()) -> Code:
    """The winnowed fingerprints of `source`, less those in `ignore` (the starter code)."""
    toks = tokens(source)
    grams = []
    for i in range(len(toks) - K + 1):
        run = toks[i:i + K]
        digest = hashlib.blake2b(" ".join(t for t, _ in run).encode(), digest_size=8)
        grams.append((int.from_bytes(digest.digest(), "big"), run[0][1], run[-1][1]))
    prints: dict[int, set[int]] = {}
    for i in range(max(len(grams) - WINDOW + 1, 1 if grams else 0)):
        h, first, last = min(grams[i:i + WINDOW])
        if h not in ignore:
            prints.setdefault(h, set()).update(range(first, last + 1))
    return Code(name, source, {h: frozenset(lines) for h, lines in prints.items()})


def answer_cells(nb) -> dict[str, str]:
    """{grade_id: source} of the notebook's code answer cells (written by the student)."""
    return {c.metadata["nbgrader"]["grade_id"]: str(c.source) for c in nb.cells
            if c.cell_type == "code" and isinstance(c.metadata.get("nbgrader"), dict)
            and is_solution(c) and not is_grade(c)
            and isinstance(c.metadata["nbgrader"].get("grade_id"), str)}


@cache
def references() -> tuple[Code, ...]:
    """Every top-level function and class of efflib and of the checks, fingerprinted."""
    units = []
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            source = path.read_text()
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for node in ast.parse(source).body:
                if isinstance(node, ast.FunctionDef | ast.ClassDef):
                    segment = ast.get_source_segment(source, node) or ""
                    units.append(fingerprint(f"{module}.{node.name}", segment))
    return tuple(units)


def _shared(a: Code, b: Code, ignore: set[int]) -> set[int]:
    return (a.prints.keys() & b.prints.keys()) - ignore


def _lines(code: Code, shared: set[int]) -> frozenset[int]:
    return frozenset().union(*(code.prints[h] for h in shared)) if shared else frozenset()


def compare(notebooks: dict[str, nbformat.NotebookNode], starter: nbformat.NotebookNode,
            threshold: float = THRESHOLD) -> list[Match]:
    """Every answer at or above `threshold` against the references or another student."""
    given = {q: frozenset(fingerprint(q, s).prints) for q, s in answer_cells(starter).items()}
    codes: dict[str, dict[str, Code]] = {}  # question -> student -> answer
    for student, nb in notebooks.items():
        for q, source in answer_cells(nb).items():
            if q in given:
                code = fingerprint(student, source, given[q])
                if len(code) >= MIN_FINGERPRINTS:
                    codes.setdefault(q, {})[student] = code
    index: dict[int, list[Code]] = {}  # fingerprint -> the references that have it
    for ref in references():
        for h in ref.prints:
            index.setdefault(h, []).append(ref)
    matches = []
    for q, answers in sorted(codes.items()):
        common = _common(answers, len(notebooks))
        for student, code in sorted(answers.items()):
            found = [h for h in code.prints if h in index]
            score = len(found) / len(code)  # however many students pasted the same
            if score >= threshold:
                best = Counter(r.name for h in found for r in index[h]).most_common(1)[0][0]
                ref = next(r for h in found for r in index[h] if r.name == best)
                shared = _shared(code, ref, set())
                matches.append(Match(student, q, best, round(score, 3),
                                     _lines(code, shared), _lines(ref, shared)))
        names = sorted(answers)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                shared = _shared(answers[a], answers[b], common)
                score = len(shared) / min(len(answers[a]), len(answers[b]))
                if score >= threshold:
                    matches.append(Match(a, q, b, round(score, 3), _lines(answers[a], shared),
                                         _lines(answers[b], shared)))
                    matches.append(Match(b, q, a, round(score, 3), _lines(answers[b], shared),
                                         _lines(answers[a], shared)))
    return matches


def _common(answers: dict[str, Code], students: int) -> set[int]:
    """Fingerprints so many students share that they are the question's idiom."""
    if students < 10:
        return set()
    counts: dict[int, int] = {}
    for code in answers.values():
        for h in code.prints:
            counts[h] = counts.get(h, 0) + 1
    return {h for h, n in counts.items() if n >= COMMON * students}


def flags(matches: list[Match]) -> dict[str, str]:
    """{student: "q2_x (efflib.quant.y 84%); q5_z (bob 91%)"} for grades.csv."""
    out: dict[str, list[str]] = {}
    for m in sorted(matches, key=lambda m: (m.student, m.question, -m.score)):
        out.setdefault(m.student, []).append(f"{m.question} ({m.other} {m.score:.0%})")
    return {s: "; ".join(f) for s, f in out.items()}


def write_report(out: Path, lab: str, matches: list[Match],
                 notebooks: dict[str, nbformat.NotebookNode],
                 findings: dict[str, list] | None = None) -> Path:
    """similarity.html: code that reaches past the refusals (grading.audit's findings), then
    each flagged answer beside what it matches, shared lines marked."""
    out.mkdir(parents=True, exist_ok=True)
    refs = {r.name: r.source for r in references()}
    rows = [f"<tr><td>{html.escape(s)}</td><td>{html.escape(f.cell)}</td><td>{f.line}</td>"
            f"<td>{html.escape(f.why)}</td><td><code>{html.escape(f.code)}</code></td></tr>"
            for s, fs in sorted((findings or {}).items()) for f in fs]
    parts = [f"<h1>{html.escape(lab)}: for review</h1>",
             "<h2>Code that reaches past the refusals</h2>",
             "<table><tr><th>student</th><th>cell</th><th>line</th><th>what it does</th>"
             f"<th>code</th></tr>{''.join(rows)}</table>" if rows else "<p>None found.</p>",
             "<h2>Similar answers</h2>",
             f"<p>Answer cells that share at least {THRESHOLD:.0%} of their fingerprints "
             "(winnowed runs of tokens, names the code binds itself ignored) with efflib, "
             "the checks or another student's same cell. The starter code is not counted. "
             "Shared lines are marked. Read both sides before deciding anything.</p>"]
    if not matches:
        parts.append("<p>No answer reached the threshold.</p>")
    for m in sorted(matches, key=lambda m: (-m.score, m.student, m.question)):
        mine = answer_cells(notebooks[m.student]).get(m.question, "")
        theirs = refs.get(m.other) or answer_cells(notebooks[m.other]).get(m.question, "")
        parts.append(f"<h3>{html.escape(m.student)} · {html.escape(m.question)} · "
                     f"{html.escape(m.other)} · {m.score:.0%}</h3><table><tr>"
                     f"<td>{_marked(mine, m.lines)}</td>"
                     f"<td>{_marked(theirs, m.other_lines)}</td></tr></table>")
    style = ("<style>td{vertical-align:top;width:50%}pre{font-size:12px}"
             "mark{background:#ffe08a}</style>")
    path = out / "similarity.html"
    path.write_text(f"<!doctype html><meta charset='utf-8'>{style}" + "".join(parts))
    return path


def _marked(source: str, lines: frozenset[int]) -> str:
    rows = []
    for number, line in enumerate(source.splitlines(), 1):
        text = html.escape(line) or " "
        rows.append(f"<mark>{text}</mark>" if number in lines else text)
    return "<pre>" + "\n".join(rows) + "</pre>"
