"""A client for a ragkit server, so a remote kb feels like ``RAG`` (``ragkit[server]``).

``search`` returns :class:`~ragkit.types.ScoredChunk` objects, ``ask`` an
:class:`~ragkit.types.Answer`, ``events`` the same stream events as
:meth:`ragkit.RAG.events` (read from the server's server-sent events), ``stream`` the
text pieces and then the Answer, as :meth:`ragkit.RAG.stream`. Errors are
:class:`~ragkit.errors.RemoteError` subclasses carrying the server's message.

Example:
    >>> from ragkit.client import Client
    >>> with Client("http://127.0.0.1:8000", api_key="rk_...") as client:  # doctest: +SKIP
    ...     job = client.wait(client.upload("handbook", "handbook.pdf"))
    ...     print(client.ask("handbook", "When are refunds paid?"))
"""

from ragkit.client._async import AsyncClient
from ragkit.client._sync import Client
from ragkit.client._wire import Job, RemoteDocument, RemoteKb

__all__ = ["AsyncClient", "Client", "Job", "RemoteDocument", "RemoteKb"]
