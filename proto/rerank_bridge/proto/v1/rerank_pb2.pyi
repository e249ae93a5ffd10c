from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EmbeddingSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMBEDDING_SOURCE_UNSPECIFIED: _ClassVar[EmbeddingSource]
    EMBEDDING_SOURCE_ENCODED: _ClassVar[EmbeddingSource]
    EMBEDDING_SOURCE_STORED: _ClassVar[EmbeddingSource]
    EMBEDDING_SOURCE_CACHED: _ClassVar[EmbeddingSource]

class EmbedInputType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMBED_INPUT_TYPE_UNSPECIFIED: _ClassVar[EmbedInputType]
    EMBED_INPUT_TYPE_DOCUMENT: _ClassVar[EmbedInputType]
    EMBED_INPUT_TYPE_QUERY: _ClassVar[EmbedInputType]
EMBEDDING_SOURCE_UNSPECIFIED: EmbeddingSource
EMBEDDING_SOURCE_ENCODED: EmbeddingSource
EMBEDDING_SOURCE_STORED: EmbeddingSource
EMBEDDING_SOURCE_CACHED: EmbeddingSource
EMBED_INPUT_TYPE_UNSPECIFIED: EmbedInputType
EMBED_INPUT_TYPE_DOCUMENT: EmbedInputType
EMBED_INPUT_TYPE_QUERY: EmbedInputType

class Document(_message.Message):
    __slots__ = ("id", "text", "embedding")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    embedding: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., embedding: _Optional[_Iterable[float]] = ...) -> None: ...

class RerankRequest(_message.Message):
    __slots__ = ("query", "documents", "top_n", "instruction", "max_query_tokens", "max_document_tokens", "return_embeddings", "model", "chunking", "return_passages", "embeddings_model")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    TOP_N_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    MAX_QUERY_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_DOCUMENT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    RETURN_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CHUNKING_FIELD_NUMBER: _ClassVar[int]
    RETURN_PASSAGES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_MODEL_FIELD_NUMBER: _ClassVar[int]
    query: str
    documents: _containers.RepeatedCompositeFieldContainer[Document]
    top_n: int
    instruction: str
    max_query_tokens: int
    max_document_tokens: int
    return_embeddings: bool
    model: str
    chunking: Chunking
    return_passages: bool
    embeddings_model: str
    def __init__(self, query: _Optional[str] = ..., documents: _Optional[_Iterable[_Union[Document, _Mapping]]] = ..., top_n: _Optional[int] = ..., instruction: _Optional[str] = ..., max_query_tokens: _Optional[int] = ..., max_document_tokens: _Optional[int] = ..., return_embeddings: _Optional[bool] = ..., model: _Optional[str] = ..., chunking: _Optional[_Union[Chunking, _Mapping]] = ..., return_passages: _Optional[bool] = ..., embeddings_model: _Optional[str] = ...) -> None: ...

class Chunking(_message.Message):
    __slots__ = ("enabled", "size", "overlap", "aggregation", "max_chunks")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    size: int
    overlap: int
    aggregation: str
    max_chunks: int
    def __init__(self, enabled: _Optional[bool] = ..., size: _Optional[int] = ..., overlap: _Optional[int] = ..., aggregation: _Optional[str] = ..., max_chunks: _Optional[int] = ...) -> None: ...

class Passage(_message.Message):
    __slots__ = ("start", "end", "score")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    score: float
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ..., score: _Optional[float] = ...) -> None: ...

class RerankResult(_message.Message):
    __slots__ = ("index", "id", "score", "truncated", "embedding", "best_passage", "source")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    BEST_PASSAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    index: int
    id: str
    score: float
    truncated: bool
    embedding: _containers.RepeatedScalarFieldContainer[float]
    best_passage: Passage
    source: EmbeddingSource
    def __init__(self, index: _Optional[int] = ..., id: _Optional[str] = ..., score: _Optional[float] = ..., truncated: _Optional[bool] = ..., embedding: _Optional[_Iterable[float]] = ..., best_passage: _Optional[_Union[Passage, _Mapping]] = ..., source: _Optional[_Union[EmbeddingSource, str]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("query_tokens", "document_tokens", "total_tokens", "truncated_documents", "sequences", "chunks")
    QUERY_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    query_tokens: int
    document_tokens: int
    total_tokens: int
    truncated_documents: int
    sequences: int
    chunks: int
    def __init__(self, query_tokens: _Optional[int] = ..., document_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., truncated_documents: _Optional[int] = ..., sequences: _Optional[int] = ..., chunks: _Optional[int] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("queue_ms", "compute_ms", "total_ms")
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    queue_ms: float
    compute_ms: float
    total_ms: float
    def __init__(self, queue_ms: _Optional[float] = ..., compute_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class RerankResponse(_message.Message):
    __slots__ = ("results", "usage", "timings", "model", "query_embedding", "embeddings_fallback")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    QUERY_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FALLBACK_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RerankResult]
    usage: Usage
    timings: Timings
    model: str
    query_embedding: _containers.RepeatedScalarFieldContainer[float]
    embeddings_fallback: str
    def __init__(self, results: _Optional[_Iterable[_Union[RerankResult, _Mapping]]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., model: _Optional[str] = ..., query_embedding: _Optional[_Iterable[float]] = ..., embeddings_fallback: _Optional[str] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("texts", "max_tokens", "model", "input_type")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_TYPE_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    max_tokens: int
    model: str
    input_type: EmbedInputType
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., max_tokens: _Optional[int] = ..., model: _Optional[str] = ..., input_type: _Optional[_Union[EmbedInputType, str]] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("embeddings", "dimensions", "usage", "timings", "model")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    dimensions: int
    usage: Usage
    timings: Timings
    model: str
    def __init__(self, embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., dimensions: _Optional[int] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., model: _Optional[str] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_documents_per_request", "max_documents_per_pass", "max_query_tokens", "max_document_tokens", "context_length", "max_message_bytes", "max_embed_texts", "max_chunks_per_document", "max_chunks_per_request")
    MAX_DOCUMENTS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_DOCUMENTS_PER_PASS_FIELD_NUMBER: _ClassVar[int]
    MAX_QUERY_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_DOCUMENT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_EMBED_TEXTS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNKS_PER_DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNKS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    max_documents_per_request: int
    max_documents_per_pass: int
    max_query_tokens: int
    max_document_tokens: int
    context_length: int
    max_message_bytes: int
    max_embed_texts: int
    max_chunks_per_document: int
    max_chunks_per_request: int
    def __init__(self, max_documents_per_request: _Optional[int] = ..., max_documents_per_pass: _Optional[int] = ..., max_query_tokens: _Optional[int] = ..., max_document_tokens: _Optional[int] = ..., context_length: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_embed_texts: _Optional[int] = ..., max_chunks_per_document: _Optional[int] = ..., max_chunks_per_request: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model_id", "kind", "dtype", "device", "limits", "embed_model_id", "embed_dimensions", "runtime", "dtype_reason", "model_digest", "embed_model_digest")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    EMBED_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    EMBED_DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_REASON_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    EMBED_MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    kind: str
    dtype: str
    device: str
    limits: Limits
    embed_model_id: str
    embed_dimensions: int
    runtime: str
    dtype_reason: str
    model_digest: str
    embed_model_digest: str
    def __init__(self, model_id: _Optional[str] = ..., kind: _Optional[str] = ..., dtype: _Optional[str] = ..., device: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., embed_model_id: _Optional[str] = ..., embed_dimensions: _Optional[int] = ..., runtime: _Optional[str] = ..., dtype_reason: _Optional[str] = ..., model_digest: _Optional[str] = ..., embed_model_digest: _Optional[str] = ...) -> None: ...
