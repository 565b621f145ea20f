"""The documentation: the README stays a user's page, and no relative link in the project's pages is broken."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README_LIMIT = 12_000  # characters: the README is a user's page; detail goes to docs/
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), *sorted((REPO / "benchmarks").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchors(page):
    """The anchors GitHub makes of a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    seen, out = {}, set()
    for title in re.findall(r"^#+\s+(.*?)\s*$", FENCE.sub("", page.read_text(encoding="utf-8")), re.M):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(page):
    """Each relative link (file, file#anchor or #anchor) of a page that leads nowhere, with the reason."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            yield f"{target}: no such file"
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            yield f"{target}: no heading with that anchor in {dest.name}"


def test_readme_is_short():
    n = len((REPO / "README.md").read_text(encoding="utf-8"))
    assert n <= README_LIMIT, f"README.md has {n} characters, over {README_LIMIT}: move detail to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    broken = list(broken_links(page))
    assert not broken, f"{page.relative_to(REPO)}: broken links {broken}"


def test_link_check(tmp_path):
    """The checker itself: GitHub's anchors for headings with punctuation and repeats, and a broken link found."""
    (tmp_path / "a.md").write_text("# Is this video fake? detect.py\n## The mean, at the demo's scale\n## Notes\n"
                                   "## Notes\n```\n# not a heading [x](nowhere.md)\n```\n", encoding="utf-8")
    assert anchors(tmp_path / "a.md") == {"is-this-video-fake-detectpy", "the-mean-at-the-demos-scale", "notes",
                                          "notes-1"}
    (tmp_path / "b.md").write_text("[ok](a.md#notes-1) [web](https://x.org/y) ![gone](c.png) [bad](a.md#nope)\n",
                                   encoding="utf-8")
    assert [m.split(":")[0] for m in broken_links(tmp_path / "b.md")] == ["c.png", "a.md#nope"]
