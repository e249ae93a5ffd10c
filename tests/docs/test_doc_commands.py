"""The commands in the README and docs/ are the ones that run: every script, module,
extra and test path they name exists, every `rerank-bridge` command line parses with
the command's own argument parser, the README's links lead somewhere, and its Python
quick start runs as printed against a live Elasticsearch and scoring server."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from rerank_bridge.cli.main import parser
from rerank_bridge.devtools import checkout
from rerank_bridge.search.dialects import DIALECTS
from rerank_bridge.server.app import BackgroundServer
from support.live_fixtures import EngineAt

ROOT = checkout.root()
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = set(PROJECT["project"]["optional-dependencies"])


def blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(), re.MULTILINE | re.DOTALL)


def command_lines(path: Path) -> list[str]:
    """Each shell command of the file's bash blocks, continuations joined, `[optional]` parts
    (documentation syntax) left out, and `a && b`, `a; b` split."""
    commands = []
    for block in blocks(path, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\[[^\]]*\]", "", line)
            commands.extend(part for part in re.split(r"&&|;|\|", line) if part.strip())
    return commands


def words(command: str) -> list[str]:
    """The command's words, past any `NAME=value` environment settings."""
    try:
        tokens = shlex.split(command, comments=True)
    except ValueError:  # an unbalanced quote inside a JSON example
        return []
    while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", tokens[0]):
        tokens = tokens[1:]
    return [token for token in tokens if token != "&"]


def problems(command: str) -> list[str]:
    tokens = words(command)
    if not tokens:
        return []
    program, args = Path(tokens[0]).name, tokens[1:]
    found = []
    if program == "bash" and args:
        found += [] if (ROOT / args[0]).is_file() else [f"no script {args[0]}"]
    elif program in ("python", "python3") and args:
        if args[0] == "-m":
            found += [] if importlib.util.find_spec(args[1]) else [f"no module {args[1]}"]
        elif args[0].endswith(".py"):
            found += [] if (ROOT / args[0]).is_file() else [f"no script {args[0]}"]
    elif program == "rerank-bridge":
        try:
            parser().parse_args(args)
        except SystemExit as stop:
            if stop.code not in (0, None):
                found.append(f"`rerank-bridge {' '.join(args)}` does not parse")
    elif program == "pytest":
        paths = [arg.split("::")[0] for arg in args if arg.startswith("tests/")]
        found += [f"no test path {path}" for path in paths if not (ROOT / path).exists()]
    elif program == "pip" and "install" in args:
        for extras in re.findall(r"\.\[([\w,-]+)\]", command):
            found += [f"no extra [{name}]" for name in extras.split(",") if name not in EXTRAS]
    return found


@pytest.mark.parametrize("path", DOCS, ids=lambda path: path.name)
def test_every_command_names_what_exists_and_parses(path: Path) -> None:
    commands = command_lines(path)
    assert [problem for command in commands for problem in problems(command)] == []


def test_the_readme_runs_the_commands_it_promises() -> None:
    commands = [" ".join(words(command)) for command in command_lines(ROOT / "README.md")]
    # The two a newcomer needs come first; the checker sees the others.
    assert commands[:2] == ["bash tools/demo.sh", "bash .ci/run"]
    assert any(command.startswith(".venv/bin/rerank-bridge proxy") for command in commands)


def test_the_checker_catches_a_stale_command() -> None:
    assert problems("bash tools/nothing.sh")
    assert problems(".venv/bin/python -m rerank_bridge.nothing")
    assert problems(".venv/bin/rerank-bridge serve --no-such-flag")
    assert problems('pip install ".[no-such-extra]"')
    assert problems(".venv/bin/pytest tests/nothing/test_x.py")
    assert not problems(".venv/bin/rerank-bridge serve --port 50051")


def requirement_names(extra: str | None) -> set[str]:
    """The distributions an extra installs (None: the core), its own extras followed."""
    project = PROJECT["project"]
    listed = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    names: set[str] = set() if extra is None else requirement_names(None)
    for requirement in listed:
        name, inner = re.match(r"([\w.-]+)(?:\[([\w,-]+)\])?", requirement).groups()  # type: ignore[union-attr]
        if name == "rerank-bridge":
            for nested in inner.split(","):
                names |= requirement_names(nested)
        else:
            names.add(name.lower())
    return names


def test_the_readmes_install_table_says_what_each_extra_brings() -> None:
    rows = re.findall(
        r"^\| (\(none\)|`[\w-]+`) \| [^|]+ \| ([^|]+) \|$", (ROOT / "README.md").read_text(), re.M
    )
    assert len(rows) == 7
    for extra, brings in rows:
        installed = requirement_names(None if extra == "(none)" else extra.strip("`"))
        named, _, absent = brings.partition(";")
        for item in named.split(","):
            word = item.split()[0].lower()
            assert any(word in name for name in installed), (extra, word)
        if "no torch" in absent:
            assert not installed & {"torch", "elasticsearch", "opensearch-py"}, extra


def test_the_readmes_layout_puts_each_package_where_the_folder_map_does() -> None:
    placed, folder = {}, ""
    for line in (ROOT / "README.md").read_text().splitlines():
        if match := re.match(r"^(\w+/)?\s+rerank_bridge\.(\w+)\s", line):
            folder = (match.group(1) or folder).rstrip("/")
            placed[match.group(2)] = folder
    shipped = {
        name.split(".")[1]: path.relative_to(ROOT).parts[0]
        for name, path in checkout.package_folders().items()
    }
    assert placed == shipped and len(shipped) == 9


def test_the_readmes_links_lead_to_files() -> None:
    links = re.findall(r"\]\(([^)#]+)\)", (ROOT / "README.md").read_text())
    assert links and [link for link in links if not (ROOT / link).is_file()] == []


@pytest.mark.live
@pytest.mark.engines("elasticsearch")
def test_the_readmes_python_quick_start_runs_as_printed(
    engine_url: EngineAt, scoring_server: BackgroundServer
) -> None:
    (quick_start,) = [block for block in blocks(ROOT / "README.md", "python") if "RerankingSearch(" in block]
    assert (
        'Elasticsearch("http://localhost:9200")' in quick_start
        and 'RerankClient("localhost:50051")' in quick_start
    )
    code = quick_start.replace("http://localhost:9200", engine_url.url).replace(
        "localhost:50051", scoring_server.address
    )
    client = DIALECTS["elasticsearch"].client(engine_url.url)
    texts = [
        "Iron deficiency is the most common cause of anemia.",
        "Rivers flow to the sea.",
        "Anemia and fatigue.",
    ]
    client.indices.create(index="docs", body={"mappings": {"properties": {"text": {"type": "text"}}}})
    try:
        for i, text in enumerate(texts):
            client.index(index="docs", id=str(i), document={"text": text}, refresh=True)
        scope: dict[str, Any] = {}
        exec(compile(code, "README.md", "exec"), scope)
    finally:
        client.indices.delete(index="docs")
        client.close()
    response = scope["response"]
    assert response["rerank"]["reranked"] is True
    assert sorted(hit["_id"] for hit in response["hits"]["hits"]) == ["0", "2"]  # the two that match


@pytest.mark.live
@pytest.mark.slow
@pytest.mark.engines("elasticsearch")
def test_the_demo_reranks_english_and_chinese_with_the_default_model(engine_url: EngineAt) -> None:
    """The README's first command ends in tools/demo.py: on the default model, SciFact's
    claims and a Chinese question, each query's BM25 and reranked top ten."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "demo.py"), "--engine-url", engine_url.url, "--queries", "1"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "starting the scoring server on builtin:multilingual-e5-small" in out
    assert re.search(r"^claim: \S", out, re.MULTILINE)
    (question,) = re.findall(r"^question: (.+)$", out, re.MULTILINE)
    assert re.search(r"[\u4e00-\u9fff]", question)  # the non-English query
    assert out.count("BM25 + rerank (rank move)") == 2
    # Each table: ten ranks a side.
    assert len(re.findall(r"^[ *]10\. ", out, re.MULTILINE)) == 2
