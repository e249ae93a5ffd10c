"""Regenerate the Python stubs of the rerank.v1 contract.

The generated files are committed so that installing the package needs no
code generator; tests/proto/test_proto_fresh.py regenerates them into a temporary
folder and fails on any difference. The generator version is pinned because
its output (and the protobuf runtime it requires) changes between releases.

    python proto/generate.py            # rewrite the committed stubs
    python proto/generate.py --out DIR  # write them under DIR instead

Beside the stubs it writes rerank.protoset, the contract as a descriptor set
(with its imports and comments) for tools that cannot read proto3 `optional`
from source or rely on reflection: `grpcurl -protoset`, `ghz --protoset`.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

GRPCIO_TOOLS_VERSION = "1.85.1"
PROTO_ROOT = Path(__file__).resolve().parent
PROTO_FILES = ("rerank_bridge/proto/v1/rerank.proto",)
PROTOSET = "rerank_bridge/proto/v1/rerank.protoset"


def generate(out_dir: Path) -> list[Path]:
    installed = metadata.version("grpcio-tools")
    if installed != GRPCIO_TOOLS_VERSION:
        raise SystemExit(
            f"grpcio-tools {GRPCIO_TOOLS_VERSION} is pinned, {installed} is installed: "
            f"pip install grpcio-tools=={GRPCIO_TOOLS_VERSION}"
        )
    from grpc_tools import protoc  # imported late: only the generator needs it

    out_dir.mkdir(parents=True, exist_ok=True)
    for proto in PROTO_FILES:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(PROTO_ROOT / proto),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {proto}")
    protoset = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--descriptor_set_out={out_dir / PROTOSET}",
        "--include_imports",
        "--include_source_info",
        *(str(PROTO_ROOT / proto) for proto in PROTO_FILES),
    ]
    if protoc.main(protoset) != 0:
        raise SystemExit("protoc failed writing the descriptor set")
    return sorted([*out_dir.rglob("*_pb2*.py*"), out_dir / PROTOSET])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=PROTO_ROOT, help="root folder of the generated package tree"
    )
    args = parser.parse_args()
    for path in generate(args.out):
        print(path, file=sys.stderr)


if __name__ == "__main__":
    main()
