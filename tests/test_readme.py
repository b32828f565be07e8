"""The README stays a welcome page: at most 200 lines, every relative link (README and docs/) leads
to a file and heading that exist, every docs/ page is reachable from it, and the licence it names
is there.

Links are read from the Markdown outside code, as ``[text](target)`` and ``![alt](target)``;
web links are not fetched. A ``#fragment`` must match a heading of the target file, slugged the
way GitHub slugs headings (lower case, punctuation dropped, spaces to hyphens).
"""

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 200

_FENCE = re.compile(r"^```.*?^```[^\n]*$", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """Markdown without fenced blocks and inline code, where brackets are not links."""
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def relative_links(path: Path) -> list[str]:
    return [target for target in _LINK.findall(_prose(path.read_text(encoding="utf-8")))
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]  # http:, https:, mailto: ...


def slug(heading: str) -> str:
    text = _INLINE_CODE.sub(lambda m: m.group(0).strip("`"), heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} +(.+?) *#*$", _FENCE.sub("", path.read_text(encoding="utf-8")), re.M)
    return {slug(heading) for heading in headings}


def test_readme_has_at_most_200_lines():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_README_LINES, (f"README.md has {n} lines (at most {MAX_README_LINES}); move details, "
                                   "results and reference material into a docs/ page and link it")


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_existing_files_and_headings(page):
    assert relative_links(README), "no relative link found in README.md: the link pattern no longer matches"
    broken = []
    for target in relative_links(page):
        file_part, _, fragment = target.partition("#")
        resolved = (page.parent / file_part).resolve() if file_part else page
        if not resolved.is_relative_to(ROOT):
            broken.append(f"{target} (outside the repository)")
        elif not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target} (no heading '#{fragment}' in {resolved.relative_to(ROOT)})")
    assert not broken, f"broken links in {page.relative_to(ROOT)}: {broken}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in relative_links(README)}
    orphans = [str(page.relative_to(ROOT)) for page in DOCS if page.resolve() not in linked]
    assert DOCS, "docs/ holds no Markdown page; the README's details live there"
    assert not orphans, f"docs pages not linked from README.md: {orphans}"


def test_license_file_exists_and_matches_pyproject():
    license_file = ROOT / "LICENSE"
    assert license_file.is_file(), "LICENSE is missing at the repository root"
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["license"]
    assert declared == "MIT", f"pyproject.toml declares {declared!r}; update LICENSE and this test together"
    assert license_file.read_text(encoding="utf-8").startswith("MIT License"), \
        "LICENSE does not hold the MIT licence that pyproject.toml declares"
