"""Exceptions raised by ragkit.

Every exception ragkit raises on purpose derives from :class:`RagkitError`. Where a
builtin exception has the same meaning, the subclass inherits it too, so callers can
catch either::

    RagkitError
    ├── ConfigurationError (ValueError)       bad argument or setting
    │   └── EmbedderMismatchError             kb built by another embedder
    ├── MissingDependencyError (ImportError)  optional extra not installed, or fails to import
    ├── LoaderError                           a file could not be read as a document
    │   ├── UnsupportedFormatError            no loader understands the content
    │   └── NoTextError                       the file (or page) holds no extractable text
    ├── StoreError                            a vector store failed or is inconsistent
    ├── KnowledgeBaseLockedError              another process is writing the kb
    ├── GenerationError                       the generator failed to produce an answer
    └── RemoteError                           a ragkit server answered with an error
        ├── AuthenticationError (PermissionError)  no valid key (401) or scope (403)
        ├── NotFoundError (LookupError)       no such kb, document or job (404)
        └── RateLimitError                    too many requests (429; retry_after)
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "EmbedderMismatchError",
    "GenerationError",
    "KnowledgeBaseLockedError",
    "LoaderError",
    "MissingDependencyError",
    "NoTextError",
    "NotFoundError",
    "RagkitError",
    "RateLimitError",
    "RemoteError",
    "StoreError",
    "UnsupportedFormatError",
]


class RagkitError(Exception):
    """Root of every error ragkit raises on purpose."""


class ConfigurationError(RagkitError, ValueError):
    """An argument or setting is invalid; the message says which and what to use."""


class EmbedderMismatchError(ConfigurationError):
    """A knowledge base was opened with an embedder other than the one that built it."""


class MissingDependencyError(RagkitError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(
        self,
        package: str,
        extra: str,
        purpose: str,
        *,
        failure: str | None = None,
        version: str | None = None,
    ) -> None:
        self.package = package
        self.extra = extra
        #: Why an installed package failed to import (None when it is not installed).
        self.failure = failure
        #: The installed version of a package that failed to import.
        self.version = version
        if failure is None:
            message = (
                f"{purpose} needs the package {package!r}, which is not installed. "
                f'Install it with: pip install "ragkit[{extra}]"'
            )
        else:
            installed = f"version {version}" if version else "a version"
            message = (
                f"{purpose} needs the package {package!r}: {installed} is installed but "
                f"importing it failed: {failure}. This is usually a version conflict with "
                f"one of its dependencies; reinstalling the extra resolves them: "
                f'pip install --upgrade "ragkit[{extra}]"'
            )
        super().__init__(message)


class LoaderError(RagkitError):
    """A file could not be turned into documents.

    Attributes:
        source: the path or URI of the file.
        reason: what went wrong, in words a user can act on.
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class UnsupportedFormatError(LoaderError):
    """No loader recognises the file's content."""


class NoTextError(LoaderError):
    """The file holds no extractable text (for example a scanned PDF without OCR)."""


class StoreError(RagkitError):
    """A vector store operation failed or the store's files are inconsistent."""


class KnowledgeBaseLockedError(RagkitError):
    """Another process (or ``RAG`` object) is writing this knowledge base.

    Attributes:
        lock_file: the lock file (``kb/.lock``) that is held.
    """

    def __init__(self, lock_file: object) -> None:
        self.lock_file = str(lock_file)
        super().__init__(
            f"the knowledge base is being written by another process: {self.lock_file} is "
            "locked. Wait for that add/sync/delete to finish and try again (reading the "
            "knowledge base meanwhile is safe). The lock is released when its process "
            "ends, even after a crash, so it never needs to be deleted by hand"
        )


class GenerationError(RagkitError):
    """A generator could not produce an answer."""


class RemoteError(RagkitError):
    """A ragkit server (:mod:`ragkit.client`) answered with an error; the message is the
    server's.

    Attributes:
        status: the HTTP status.
        code: the server's error code (``not_found``, ``invalid_request``...).
    """

    def __init__(self, message: str, status: int, code: str = "") -> None:
        self.status = status
        self.code = code
        super().__init__(message)


class AuthenticationError(RemoteError, PermissionError):
    """The server refused the API key (401) or its scope (403)."""


class NotFoundError(RemoteError, LookupError):
    """The server has no such kb, document or job for this key's tenant (404)."""


class RateLimitError(RemoteError):
    """Too many requests for this key (429).

    Attributes:
        retry_after: seconds the server asked to wait.
    """

    def __init__(self, message: str, status: int, code: str = "", retry_after: float = 1.0):
        self.retry_after = retry_after
        super().__init__(message, status, code)
