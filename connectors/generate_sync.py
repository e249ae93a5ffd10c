"""Writes the sync client and connector (`rerank_bridge/search/_sync/`) from their
asyncio originals (`_async/`), the way elasticsearch-py keeps its two APIs: one
source, so the twins cannot drift. tests/search/test_sync_generated.py fails
when a committed file differs from what this writes.

A script beside the package it writes into, as proto/generate.py is beside the
stubs: it works on a checkout, so the wheel does not carry it.

    python connectors/generate_sync.py          # rewrite _sync/
    python connectors/generate_sync.py --check  # exit 1 when _sync/ is stale
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

# Found by path, not imported: the package imports _sync/, which may not exist yet.
SOURCE = Path(__file__).resolve().parent / "rerank_bridge" / "search" / "_async"
TARGET = SOURCE.parent / "_sync"

# Whole words of the async source and what the sync one says instead.
WORDS = {
    "AsyncRerankClient": "RerankClient",
    "AsyncRerankingSearch": "RerankingSearch",
    "AsyncElasticsearch": "Elasticsearch",
    "AsyncOpenSearch": "OpenSearch",
    "_async": "_sync",
    "gather_calls": "call_all",
    "aio": "grpc",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
}
LINES_DROPPED = ("from grpc import aio\n",)
COMMAND = "python connectors/generate_sync.py"
HEADER = f"# Generated from _async/{{name}} by `{COMMAND}`: edit that file.\n"


def _formatted(text: str, name: str) -> str:
    """ruff's import order and format, as the committed files are checked with."""
    for command in (["check", "--fix", "--select", "I", "--quiet"], ["format", "--quiet"]):
        text = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--stdin-filename", str(TARGET / name), "-"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return text


def unasync(text: str) -> str:
    for line in LINES_DROPPED:
        text = text.replace(line, "")
    text = re.sub(r"\bawait\s+", "", text)
    text = re.sub(r"\basync\s+(def|with|for)\b", r"\1", text)
    for word, sync_word in WORDS.items():
        text = re.sub(rf"\b{word}\b", sync_word, text)
    return text


def generated() -> dict[str, str]:
    """The _sync/ package's files by name, as they should read."""
    files = {}
    for source in sorted(SOURCE.glob("*.py")):
        if source.name == "__init__.py":
            body = f'"""The sync client and connector, generated from _async/ by `{COMMAND}`."""\n'
        else:
            body = HEADER.format(name=source.name) + unasync(source.read_text())
        files[source.name] = _formatted(body, source.name)
    return files


def stale() -> list[str]:
    return [
        name
        for name, text in generated().items()
        if not (TARGET / name).is_file() or (TARGET / name).read_text() != text
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only say whether _sync/ is stale")
    args = parser.parse_args()
    if args.check:
        if names := stale():
            raise SystemExit(f"stale in {TARGET}: {', '.join(names)} (run {COMMAND})")
        return
    TARGET.mkdir(exist_ok=True)
    for name, text in generated().items():
        (TARGET / name).write_text(text)
        print(TARGET / name, file=sys.stderr)


if __name__ == "__main__":
    main()
