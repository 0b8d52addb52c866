"""Generators: write an answer from numbered contexts (see :class:`ragkit.protocols.Generator`).

The LLM backends import their runtime (xllamacpp or llama-cpp-python, httpx) only when
first used, so importing this package stays light.
"""

from ragkit.generation.extractive import ExtractiveGenerator
from ragkit.generation.llamacpp import LlamaCppGenerator
from ragkit.generation.llm import CompletionGenerator
from ragkit.generation.openai import OpenAIGenerator
from ragkit.generation.prompt import (
    DEFAULT_SYSTEM,
    DEFAULT_TEMPLATE,
    DEFAULT_USER_TEMPLATE,
    REFUSAL,
    ChatMessage,
    Prompt,
    PromptBuilder,
)
from ragkit.generation.transformers import TransformersGenerator

__all__ = [
    "DEFAULT_SYSTEM",
    "DEFAULT_TEMPLATE",
    "DEFAULT_USER_TEMPLATE",
    "REFUSAL",
    "ChatMessage",
    "CompletionGenerator",
    "ExtractiveGenerator",
    "LlamaCppGenerator",
    "OpenAIGenerator",
    "Prompt",
    "PromptBuilder",
    "TransformersGenerator",
]
