"""Adapters to and from other libraries (``ragkit.adapters.langchain``)."""
