"""Generators: write an answer from numbered contexts (see :class:`ragkit.protocols.Generator`)."""

from ragkit.generation.extractive import ExtractiveGenerator
from ragkit.generation.llm import CompletionGenerator
from ragkit.generation.prompt import DEFAULT_TEMPLATE, REFUSAL, Prompt, PromptBuilder

__all__ = [
    "DEFAULT_TEMPLATE",
    "REFUSAL",
    "CompletionGenerator",
    "ExtractiveGenerator",
    "Prompt",
    "PromptBuilder",
]
