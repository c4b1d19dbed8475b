"""autograde.course.readme: the README's generated blocks match the labs and the recorded bench."""

import pytest

from autograde.course import build, inventory, readme


def test_generated_blocks_are_up_to_date():
    assert not readme.update(check=True), "README is stale: run `python -m autograde readme`"


def test_the_lab_table_has_every_lab_and_the_totals():
    table = readme.labs_block()
    for lab in build.lab_names():
        assert f"(labs/{lab}/{lab}.ipynb)" in table
    assert table.splitlines()[-1].startswith("| all |")


def test_a_stale_or_unknown_block_is_noticed(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("x\n<!-- generated: labs -->\nold\n<!-- end generated -->\n")
    assert readme.update(path, check=True) and "old" in path.read_text()
    assert readme.update(path) and not readme.update(path, check=True)
    path.write_text("<!-- generated: nonsense -->\n<!-- end generated -->\n")
    with pytest.raises(ValueError, match="nonsense"):
        readme.update(path)


def test_docs_name_no_paths_outside_the_repository():
    for doc in [build.ROOT / "README.md", *sorted((build.ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        assert "../shared" not in text and "seeds/" not in text, \
            f"{doc.name} points outside the repository"


def test_prose_counts_of_judged_points_match_the_labs():
    """The security sections state how many points are judged outside the kernel."""
    facts = [inventory.facts(lab) for lab in build.lab_names()]
    judged, auto = sum(f.judged_points for f in facts), sum(f.auto_points for f in facts)
    assert f"{judged} of the {auto} autograded points" in (build.ROOT / "README.md").read_text()
    doc = (build.ROOT / "docs" / "grading-security.md").read_text()
    assert f"{judged} of the course's {auto} autograded points" in doc
