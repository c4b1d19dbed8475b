"""autograde.grading.sanitize: what a student wrote is shown, never run, on any page."""

import re

import pytest
from nbconvert.exporters import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from autograde.grading.executor import SandboxedExecute
from autograde.grading.feedback import to_mathml
from autograde.grading.sanitize import clean_html, passive_outputs
from autograde.grading.settings import Settings
from autograde.nbgrader_seam import command

ACTIVE = re.compile(r"<(img|svg|a|iframe|body|math|mrow)\b[^>]*(on\w+=|javascript:|data:text)|"
                    r"<script\b|<style\b|<iframe\b|<object\b|<embed\b|<form\b", re.I)
HOSTILE = [
    '<img src=x onerror="alert(1)">',
    '<a href="javascript:alert(1)">a</a>',
    '<a href=" JaVaScRiPt:alert(1)">a</a>',
    '<a href="data:text/html,<script>alert(1)</script>">a</a>',
    "<script>alert(1)</script>",
    "<svg onload=alert(1)></svg>",
    '<iframe src="https://example.org"></iframe>',
    "<style>body { display: none }</style>",
    '<p style="background:url(javascript:alert(1))">x</p>',
    '<math><mtext><script>alert(1)</script></mtext></math>',
    '<math href="javascript:alert(1)"><mi>x</mi></math>',
    "<!-- <script>alert(1)</script> -->",
]


@pytest.mark.parametrize("html", HOSTILE)
def test_clean_html_leaves_nothing_active(html):
    assert not ACTIVE.search(clean_html(html)), clean_html(html)


def test_clean_html_keeps_what_feedback_needs():
    page = ('<p class="x">a <b>b</b> <code>c</code></p><a href="#q1_test">q1</a>'
            '<a href="https://pytorch.org">docs</a><img src="data:image/png;base64,AAAA" alt="p">'
            '<table><tbody><tr><td colspan="2">t</td></tr></tbody></table>')
    assert clean_html(page) == page
    maths = to_mathml("$x^2 < \\frac{1}{2}$")
    assert "<math" in maths and "<mfrac>" in maths and "&lt;" not in maths.split("<mo>")[0]


def test_tex_cannot_smuggle_tags_through_mathml():
    out = to_mathml("$\\text{<script>alert(1)</script>}$ and $\\href{javascript:alert(1)}{x}$")
    assert "<math" in out and not ACTIVE.search(out), out


def test_only_passive_outputs_are_kept():
    cell = new_code_cell("display(...)")
    cell.outputs = [
        new_output("display_data", data={"text/html": "<script>x</script>",
                                         "text/plain": "<HTML object>"}),
        new_output("display_data", data={"application/javascript": "alert(1)"}),
        new_output("execute_result", data={"image/svg+xml": "<svg onload=x/>",
                                           "image/png": "AAAA"}, execution_count=1),
        new_output("stream", name="stdout", text="<script>kept as text</script>"),
    ]
    nb = new_notebook(cells=[cell])
    passive_outputs(nb)
    data = [o.get("data") for o in cell.outputs]
    assert data[0] == {"text/plain": "<HTML object>"}
    assert data[1] == {"text/plain": "[application/javascript output removed by the grader]"}
    assert data[2] == {"image/png": "AAAA"}
    assert cell.outputs[3].text == "<script>kept as text</script>"  # shown escaped


def _exporter(tmp_path, template=None) -> HTMLExporter:
    """The HTMLExporter with the grading folder's settings, as generate_feedback and the
    formgrader build it."""
    config = command.grading_config(tmp_path, "sqlite://", Settings().to_dict(), SandboxedExecute,
                                    [])
    if template:
        config.HTMLExporter.template_name = template
    return HTMLExporter(config=config)


@pytest.mark.parametrize("template", ["classic", "lab"])
def test_pages_rendered_with_the_grading_settings_run_nothing(tmp_path, template):
    markdown = "\n\n".join([*HOSTILE, "[x](javascript:alert(1)) ![y](javascript:alert(2))",
                            "`a < b` and **bold**"])
    cell = new_code_cell("x")
    cell.outputs = [
        new_output("display_data", data={"text/html": '<img src=x onerror="alert(1)"><b>tab</b>'}),
        new_output("display_data", data={
            "text/markdown": "<script>alert(1)</script> [z](javascript:alert(3))"}),
        new_output("display_data", data={"application/javascript": "alert(4)"})]
    html, _ = _exporter(tmp_path, template).from_notebook_node(
        new_notebook(cells=[new_markdown_cell(markdown), cell]))
    student = html[html.index("</head>"):]  # after the page's own CSS and scripts
    assert not re.search(r"<script\b[^>]*>[^<]*alert", student)
    assert not re.search(r"<(img|a|svg|iframe)\b[^>]*(on\w+=|javascript:)", student, re.I)
    assert "alert(4)" not in html
    assert "<b>tab</b>" in html and "<strong>bold</strong>" in html
    assert "<code>a &lt; b</code>" in html  # code spans still read as written
