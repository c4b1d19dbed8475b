"""Nothing a student wrote runs in a reader's browser: safe HTML for feedback and the formgrader.

A student's markdown may hold raw HTML (`<img onerror=...>`, `<script>`) and links
to `javascript:`; outputs may be HTML, JavaScript, SVG or widgets. Feedback goes
to students and is opened by instructors, sometimes through a Jupyter server,
where a script would run with the instructor's rights. So:

- the autograded notebook keeps only passive outputs (text, PNG, JPEG): the
  rest is dropped as the kernel's results are saved (`passive_outputs`);
- every page rendered from it (feedback, and the formgrader, which reads the
  same HTMLExporter settings) turns markdown and HTML into HTML through an
  allow-list (`clean_html`): text formatting, tables, images and MathML; no
  scripts, styles or event handlers; links only to http(s), mailto and the page
  itself; images only from http(s) or inline PNG/JPEG/GIF.
"""

import re

import bleach
from jinja2 import pass_context
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

PASSIVE = {"text/plain", "image/png", "image/jpeg"}  # what an autograded output may keep

_MATHML = {"math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msub", "msup",
           "msubsup", "mfrac", "msqrt", "mroot", "mover", "munder", "munderover",
           "mtable", "mtr", "mtd", "mstyle", "mpadded", "mphantom", "menclose", "semantics",
           "annotation", "mmultiscripts", "mprescripts", "none"}
TAGS = {"a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del",
        "details", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4",
        "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s",
        "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td",
        "tfoot", "th", "thead", "tr", "u", "ul", "var", *_MATHML}
_COMMON = {"class", "id", "title", "align", "colspan", "rowspan", "alt", "width", "height",
           # MathML presentation attributes (latex2mathml writes these)
           "display", "xmlns", "mathvariant", "stretchy", "fence", "separator", "lspace",
           "rspace", "columnalign", "columnlines", "rowlines", "displaystyle", "scriptlevel",
           "accent", "accentunder", "linethickness", "minsize", "maxsize", "movablelimits",
           "symmetric", "notation", "depth", "voffset", "encoding", "open", "close"}
_HREF = re.compile(r"^(#|https?://|mailto:)", re.I)
_SRC = re.compile(r"^(https?://|data:image/(png|jpeg|gif);base64,)", re.I)


def _allowed(tag: str, name: str, value: str) -> bool:
    if name == "href":
        return tag == "a" and bool(_HREF.match(value.strip()))
    if name == "src":
        return tag == "img" and bool(_SRC.match(value.strip()))
    return name in _COMMON


def clean_html(html) -> str:
    """`html` with everything outside the allow-list escaped (shown as text, never run)."""
    html = html.decode() if isinstance(html, bytes) else str(html)
    return bleach.clean(html, tags=TAGS, attributes=_allowed,
                        protocols={"http", "https", "mailto", "data"}, strip_comments=True)


@pass_context
def markdown2html(context, source: str) -> str:
    """nbconvert's markdown rendering (math kept for the page, attachments inlined), then
    `clean_html`: raw HTML and unsafe links in a student's markdown are neutralised."""
    cell = context.get("cell", {})
    renderer = IPythonRenderer(escape=False, attachments=cell.get("attachments", {}),
                               embed_images=False, anchor_link_text="",
                               exclude_anchor_links=True)
    return clean_html(MarkdownWithMath(renderer=renderer).render(source))


def passive_outputs(nb) -> None:
    """Drop every output representation but text, PNG and JPEG, in place; a result left
    with nothing says what was removed."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") not in ("display_data", "execute_result"):
                continue
            dropped = sorted(set(out.get("data", {})) - PASSIVE)
            for key in dropped:
                del out.data[key]
                out.get("metadata", {}).pop(key, None)
            if dropped and not out.data:
                out.data["text/plain"] = f"[{', '.join(dropped)} output removed by the grader]"
