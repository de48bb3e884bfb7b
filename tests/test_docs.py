"""The documentation's examples run, and its commands, links and figures point at real things.

Every ```python block of README.md, CHANGELOG.md and docs/**/*.md is executed: the blocks of one
file in order, in one namespace, in a fresh interpreter started in a temporary directory (so an
example cannot lean on state left by another file or by the test process). A block preceded by
the line ``<!-- skip-test -->`` (for real datasets or a GPU) is only compiled. Shell blocks are
not run, but every ``labelrefine`` / ``labelrefine-calr`` command in them is parsed by the real
argument parser, every ``python FILE`` names an existing file and every ``pip install`` extra
exists.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trainings, process spawns, the docs build: see CONTRIBUTING.md

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKDOWN = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(DOCS.rglob("*.md"))]
SKIP_MARK = "<!-- skip-test -->"
PYTHON = ("python", "py")
SHELL = ("bash", "sh", "shell", "console")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: bool

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    """Fenced code blocks of a markdown file (also indented ones, e.g. inside admonitions)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    previous = ""
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        if j == len(lines):
            raise AssertionError(f"{path.relative_to(ROOT)}:{i + 1}: code block is never closed")
        code = textwrap.dedent("\n".join(body)) + "\n"
        blocks.append(Block(path, i + 1, match["lang"].lower(), code, previous == SKIP_MARK))
        previous = ""
        i = j + 1
    return blocks


ALL_BLOCKS = [block for path in MARKDOWN if path.exists() for block in fenced_blocks(path)]
FILES_WITH_EXAMPLES = sorted({b.path for b in ALL_BLOCKS if b.lang in PYTHON and not b.skip})

_RUNNER = """
import json, sys
blocks = json.loads(sys.stdin.read())
namespace = {"__name__": "__main__"}
for block in blocks:
    # pad with newlines so that tracebacks give the line numbers of the markdown file
    exec(compile("\\n" * block["line"] + block["code"], block["where"], "exec"), namespace)
"""


def _file_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", FILES_WITH_EXAMPLES, ids=_file_id)
def test_python_examples_run(path: Path, tmp_path: Path) -> None:
    blocks = [b for b in ALL_BLOCKS if b.path == path and b.lang in PYTHON and not b.skip]
    payload = json.dumps([{"line": b.line, "code": b.code, "where": b.where} for b in blocks])
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=payload,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, f"examples of {_file_id(path)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"


def test_getting_started_commands_run_on_the_files_its_example_writes(tmp_path: Path) -> None:
    """The page's `labelrefine refine` / `report` commands read only files that its Python example wrote."""
    path = DOCS / "getting-started.md"
    test_python_examples_run(path, tmp_path)
    commands = [argv for where, argv in SHELL_COMMANDS if where.startswith(_file_id(path) + ":")]
    commands = [argv for argv in commands if argv[:2] in (["labelrefine", "refine"], ["labelrefine", "report"])]
    assert len(commands) >= 2, "getting-started.md shows no refine/report commands"
    for argv in commands:
        proc = subprocess.run(
            [sys.executable, "-m", "labelrefine", *argv[1:]], capture_output=True, text=True, cwd=tmp_path, timeout=300
        )
        assert proc.returncode == 0, f"{shlex.join(argv)} failed:\n{proc.stderr[-3000:]}"


def test_every_python_block_compiles() -> None:
    blocks = [b for b in ALL_BLOCKS if b.lang in PYTHON]
    assert blocks, "no python examples found"
    for block in blocks:
        compile(block.code, block.where, "exec")


def test_skip_marker_only_before_python_blocks() -> None:
    for path in MARKDOWN:
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        marks = text.count(SKIP_MARK)
        skipped = [b for b in ALL_BLOCKS if b.path == path and b.skip]
        assert marks == len(skipped), f"{_file_id(path)}: {SKIP_MARK} must directly precede a code block"
        for block in skipped:
            assert block.lang in PYTHON, f"{block.where}: {SKIP_MARK} is only meaningful before a python block"


def test_few_examples_are_skipped() -> None:
    python_blocks = [b for b in ALL_BLOCKS if b.lang in PYTHON]
    skipped = [b.where for b in python_blocks if b.skip]
    assert len(skipped) <= max(2, len(python_blocks) // 4), f"too many examples are not run: {skipped}"


# ----------------------------------------------------------------------------------------------- shell commands


def _shell_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every command in the shell blocks, continuation lines joined, `&&` split."""
    commands = []
    for block in ALL_BLOCKS:
        if block.lang not in SHELL:
            continue
        text = re.sub(r"\\\n", " ", block.code)
        for line in text.splitlines():
            line = line.strip().removeprefix("$ ")
            if not line or line.startswith("#"):
                continue
            for part in line.split("&&"):
                argv = shlex.split(part, comments=True)
                while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):  # VAR=value prefixes
                    argv = argv[1:]
                if argv:
                    commands.append((block.where, argv))
    return commands


SHELL_COMMANDS = _shell_commands()


def _parse(parser_factory, argv: list[str], where: str) -> None:
    try:
        parser_factory().parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on an unknown option, 0 on --help
        assert exc.code == 0, f"{where}: the documented command does not parse: {shlex.join(argv)}"


def _recipe_parser():
    from labelrefine.recipes.calr.cli import build_parser

    return build_parser


def test_labelrefine_commands_parse() -> None:
    from labelrefine.cli import build_parser

    checked = 0
    for where, argv in SHELL_COMMANDS:
        if argv[0] == "labelrefine":
            _parse(build_parser, argv[1:], where)
            checked += 1
    assert checked, "no labelrefine command found in the docs"


def test_recipe_commands_parse() -> None:
    commands = []
    for where, argv in SHELL_COMMANDS:
        if argv[0] == "labelrefine-calr":
            commands.append((where, argv[1:]))
        elif "labelrefine.recipes.calr" in argv and argv[0] in ("python", "torchrun"):
            commands.append((where, argv[argv.index("labelrefine.recipes.calr") + 1 :]))
    if not commands:
        pytest.skip("the docs show no recipe command")
    if importlib.util.find_spec("torch") is None:
        pytest.skip("the recipe needs the torch extra")
    factory = _recipe_parser()
    for where, argv in commands:
        _parse(factory, argv, where)


def test_python_scripts_in_commands_exist() -> None:
    for where, argv in SHELL_COMMANDS:
        if argv[0] in ("python", "python3") and len(argv) > 1 and argv[1].endswith(".py"):
            assert (ROOT / argv[1]).is_file(), f"{where}: no such script {argv[1]}"


def test_pip_extras_exist() -> None:
    section = (ROOT / "pyproject.toml").read_text(encoding="utf-8").split("[project.optional-dependencies]", 1)[1]
    extras = set(re.findall(r"^([\w-]+)\s*=", section.split("\n[", 1)[0], flags=re.M))  # tomllib is 3.11+
    assert {"faiss", "torch", "docs", "dev"} <= extras
    found = 0
    for where, argv in SHELL_COMMANDS:
        if argv[:2] != ["pip", "install"]:
            continue
        for arg in argv[2:]:
            match = re.fullmatch(r"(?:\.|labelrefine)\[([\w,-]+)\]", arg)
            if match:
                found += 1
                unknown = set(match.group(1).split(",")) - extras
                assert not unknown, f"{where}: pip extra(s) {sorted(unknown)} not in pyproject.toml"
    assert found, "no pip install command with extras found"


# ----------------------------------------------------------------------------------------------- links and figures

_LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def test_relative_links_and_images_exist() -> None:
    for path in MARKDOWN:
        if not path.exists():
            continue
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
        for match in _LINK.finditer(text):
            target = match["target"].split("#", 1)[0]
            if not target or re.match(r"[a-z][a-z0-9+.-]*:", target):  # anchors only, http:, mailto:
                continue
            assert (path.parent / target).exists(), f"{_file_id(path)}: broken link {match['target']}"


def test_figures_are_made_by_the_script() -> None:
    script = (DOCS / "make_figures.py").read_text(encoding="utf-8")
    used = {m for path in DOCS.rglob("*.md") for m in re.findall(r"img/([\w.-]+\.png)", path.read_text())}
    assert used, "the docs show no figure"
    for name in used:
        assert (DOCS / "img" / name).is_file(), f"docs/img/{name} is missing: run python docs/make_figures.py"
        assert name in script, f"docs/img/{name} is not drawn by docs/make_figures.py"


def test_getting_started_explains_every_demo_column() -> None:
    from labelrefine.cli import _REPORT_COLUMNS

    text = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    for column in [name for name, _, _ in _REPORT_COLUMNS] + ["discarded"]:
        assert f"**{column}**" in text, f"getting-started.md does not explain the demo column {column!r}"


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module.split(".")[0]) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[docs]')")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"


def test_sphinx_roles_become_links() -> None:
    """The docs build's griffe extension turns Sphinx roles into autorefs links (or plain code)."""
    if importlib.util.find_spec("griffe") is None:
        pytest.skip("griffe is not installed (pip install -e '.[docs]')")
    import griffe

    spec = importlib.util.spec_from_file_location("griffe_sphinx_roles", DOCS / "griffe_sphinx_roles.py")
    roles = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(roles)
    package = griffe.load("labelrefine", search_paths=[str(ROOT)], extensions=griffe.load_extensions(roles.SphinxRoles))
    cluster_doc = package["cluster.infomap_cluster"].docstring.value
    assert ":func:" not in cluster_doc
    assert "[`labelrefine.neighbors.knn`][labelrefine.neighbors.knn]" in cluster_doc  # a full path, shown as written
    extension = roles.SphinxRoles()
    scope = package["refine.refine"]
    by_short = {"knn": {"labelrefine.neighbors.knn"}}
    extension._kind_of = {"labelrefine.neighbors.knn": "function"}
    text = "See :func:`~labelrefine.pivots.select_pivots`, :func:`knn`, :class:`numpy.ndarray` and this::\n\n    code"
    out = extension._rewrite(scope, text, by_short)
    assert "[`select_pivots`][labelrefine.pivots.select_pivots]" in out  # ~ shows the last component
    assert "[`knn`][labelrefine.neighbors.knn]" in out  # a unique short name anywhere in the package
    assert "`numpy.ndarray`" in out and "][numpy" not in out  # outside the package: plain code
    assert "this:\n" in out  # the reST literal-block marker loses a colon


def _table_rows(text: str) -> dict[str, list[float]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 2 and cells[0] in ("global", "local", "refined"):
            rows[cells[0]] = [float(c) for c in cells[1:]]
    return rows


def test_documented_demo_output_is_current(tmp_path: Path) -> None:
    """The demo table quoted in getting-started.md still matches `labelrefine demo` (to a platform tolerance)."""
    if importlib.util.find_spec("infomap") is None:
        pytest.skip("the demo needs the infomap extra")
    text = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    quoted = next(b.code for b in ALL_BLOCKS if b.path.name == "getting-started.md" and "| refined |" in b.code)
    proc = subprocess.run(
        [sys.executable, "-m", "labelrefine.cli", "demo"], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    documented, fresh = _table_rows(quoted), _table_rows(proc.stdout)
    assert set(documented) == set(fresh) == {"global", "local", "refined"}
    for name, values in documented.items():
        for doc, now in zip(values, fresh[name], strict=True):
            tolerance = 0.02 if doc <= 5 else 0.1 * doc  # scores and expansion vs counts
            assert abs(doc - now) <= tolerance, (
                f"getting-started.md quotes an outdated demo row {name!r}: {values} vs now {fresh[name]}; "
                "update the table (and the figures: python docs/make_figures.py)"
            )
    assert "Refinement trades" in text
