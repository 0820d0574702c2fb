"""The README and docs/ hold together: every relative link reaches a file (and a heading, when
it names one), the README's Contents lists exactly its sections, and no heading points at a
document the repository does not have."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
         *sorted((REPO / "examples").glob("*/README.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(page: Path) -> list[str]:
    text = re.sub(r"(?ms)^```.*?^```", "", page.read_text())  # not the comments in code
    return re.findall(r"(?m)^#+ (.*)", text)


def test_every_relative_link_reaches_its_file_and_heading():
    broken = []
    for page in PAGES:
        for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", link):
                continue
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                broken.append(f"{page.relative_to(REPO)}: {link} (no such file)")
            elif anchor and target.suffix == ".md" and anchor not in map(slug, headings(target)):
                broken.append(f"{page.relative_to(REPO)}: {link} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_readme_contents_lists_its_sections():
    readme = REPO / "README.md"
    listed = re.findall(r"(?m)^- \[(.*)\]\(#(.*)\)", readme.read_text())
    second_level = re.findall(r"(?m)^## (.*)", re.sub(r"(?ms)^```.*?^```", "", readme.read_text()))
    assert [title for title, _ in listed] == [h for h in second_level if h != "Contents"]
    assert all(anchor == slug(title) for title, anchor in listed)


def test_no_heading_refers_to_a_document_outside_the_repository():
    for page in PAGES:
        assert not [h for h in headings(page) if "SPEC" in h], page
