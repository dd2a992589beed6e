"""Citations in the repository resolve: no pointers to notes outside it, every cited ``docs/``
file exists, every cited section of ``docs/official_code.md`` exists, and every ``DEVIATION``
comment in the code has its row there (with the option that restores the official behaviour)."""

import re
import subprocess
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "official_code.md"
# pointers to notes that live outside the repository (spelled in pieces so this file does not match)
FORBIDDEN = re.compile(
    "|".join(["dive_" + "reference", "shared/" + "notes", "pyro_" + "anchors", "peers_" + "and_metrics"])
)
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".ipynb", ""}


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    files = [ROOT / n for n in names if Path(n).suffix in TEXT_SUFFIXES and (ROOT / n).is_file()]
    return [f for f in files if f.stat().st_size < 2_000_000]


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ""


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def offenders(pattern: re.Pattern, files) -> list[str]:
    return [f"{_name(p)}:{i}" for p in files for i, line in enumerate(_text(p).splitlines(), 1) if pattern.search(line)]


def test_no_citation_of_notes_outside_the_repository():
    assert offenders(FORBIDDEN, tracked_text_files()) == []


def test_the_checkers_catch_a_notes_citation_a_missing_doc_and_a_missing_section(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        '"""Prior N(0, 1) ('
        + "dive_"
        + 'reference §3)."""\n# see docs/'
        + "nowhere.md and docs/official_code.md §"
        + "99\n"
    )
    assert offenders(FORBIDDEN, [bad]) == ["bad.py:1"]
    assert unresolved([bad]) == ["bad.py cites docs/" + "nowhere.md", "bad.py cites official_code " + "§99"]


def unresolved(files) -> list[str]:
    sections = set(re.findall(r"^## §(\d+)", DOC.read_text(encoding="utf-8"), flags=re.M))
    out = []
    for path in files:
        text = _text(path)
        for doc in sorted(set(re.findall(r"\bdocs/[\w./-]+\.md", text))):
            if not (ROOT / doc).is_file():
                out.append(f"{_name(path)} cites {doc}")
        for first, second in re.findall(r"(?:official_code\.md|\[oc) ?§(\d+)(?:[-, ]+§?(\d+))?", text):
            out += [f"{_name(path)} cites official_code §{n}" for n in (first, second) if n and n not in sections]
    return out


def test_cited_docs_exist_and_sections_resolve():
    assert unresolved(tracked_text_files()) == []


def test_every_deviation_comment_is_listed():
    in_code = Counter()
    for folder in ("dive_pyro", "models", "guides", "inference"):
        for path in (ROOT / folder).rglob("*.py"):
            n = len(re.findall(r"DEVIATION[:( ]", path.read_text(encoding="utf-8")))
            if n:
                in_code[str(path.relative_to(ROOT))] = n
    table = DOC.read_text(encoding="utf-8").split("## §7", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    in_doc = Counter(re.match(r"\| `([^`]+)`", row).group(1) for row in rows)
    assert in_code and in_doc == in_code
    assert all(row.rstrip().endswith("|") and row.count("|") == 5 for row in rows)  # 4 columns, option included
