"""Embedders behind one interface: a local int8 MiniLM (onnxruntime) and an Azure OpenAI / Foundry deployment.

The implementations import their heavy dependencies (onnxruntime, tokenizers, openai) only when first used.
"""

from shared.learning.embedders.azure_openai import AzureOpenAIEmbedder
from shared.learning.embedders.base import Embedder, Embeddings, l2_normalise
from shared.learning.embedders.minilm import LocalMiniLM, ModelHashError

__all__ = ["AzureOpenAIEmbedder", "Embedder", "Embeddings", "LocalMiniLM", "ModelHashError", "l2_normalise"]
