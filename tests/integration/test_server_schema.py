"""schemathesis against the OpenAPI schema a real uvicorn serves: for every operation,
generated requests (valid and invalid) never get a 5xx, and every response matches the
schema (status documented, content type, body, headers).

Bounded and deterministic: ``MAX_EXAMPLES`` cases per operation, hypothesis
derandomized, no shrinking database, on 127.0.0.1 only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

pytestmark = pytest.mark.integration

MAX_EXAMPLES = int(os.environ.get("RAGKIT_SCHEMA_EXAMPLES", "12"))
TEXT = "Refunds are paid within 14 days of the return. The Lyon warehouse ships daily."


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A server of its own (its kbs get random uploads), with a kb ``handbook`` of acme."""
    pytest.importorskip("uvicorn")
    import httpx

    from ragkit.backends.keys import create_key
    from ragkit.backends.local_catalog import LocalCatalog
    from ragkit.client import Client
    from ragkit.server import ServerSettings, create_app
    from ragkit.server.testing import fake_opener, running_server

    root = tmp_path_factory.mktemp("schema-server")
    catalog = LocalCatalog(root)
    _, key = create_key(catalog, "acme", ("admin",))
    settings = ServerSettings(kb=str(root), rate_limit=0, sse_heartbeat=0.5)
    app = create_app(settings, catalog=catalog, open_rag=fake_opener())
    with running_server(app) as url, Client(url, key) as client:
        client.create_kb("handbook")
        client.wait(client.add_texts("handbook", [{"text": TEXT, "source": "handbook.txt"}]))
        raw = httpx.get(url + "/openapi.json").json()
        yield schemathesis.openapi.from_dict(raw), url, key


def _aim(case: Any) -> None:
    """Point most cases at the kb that exists (random names only reach 404s), but
    never delete it."""
    params = case.path_parameters or {}
    if "kb" in params and not (case.method == "DELETE" and case.path == "/v1/kbs/{kb}"):
        params["kb"] = "handbook"
    if "model" in params:
        params["model"] = "handbook"
    body = case.body
    chat = case.path == "/v1/chat/completions" and isinstance(body, dict)
    if chat and isinstance(body.get("model"), str):
        body["model"] = "handbook"


#: Operations with rules their JSON schema does not say, answered 400 with the reason:
#: the files (or texts) of one upload need distinct names; a chat needs a user message with text
#: and n=1; ``filters`` is ragkit's filter language (an object in the schema).
SEMANTIC_400 = {
    "POST /v1/kbs/{kb}/documents",
    "POST /v1/kbs/{kb}/documents/text",
    "POST /v1/chat/completions",
    "POST /v1/kbs/{kb}/search",
    "POST /v1/kbs/{kb}/ask",
}


def _runner(operation: Any, url: str, key: str, excluded: list[Any]) -> Any:
    """The bounded, deterministic hypothesis test of one operation."""
    from hypothesis import HealthCheck, Phase, given, settings

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        _aim(case)
        case.call_and_validate(
            base_url=url,
            headers={"Authorization": f"Bearer {key}"},
            excluded_checks=excluded,
            timeout=30,
        )

    return run


def test_every_operation_answers_without_5xx_and_matches_its_schema(served: Any) -> None:
    from schemathesis.checks import load_all_checks
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    load_all_checks()
    schema, url, key = served
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:
        excluded = [positive_data_acceptance] if operation.label in SEMANTIC_400 else []
        try:
            _runner(operation, url, key, excluded)()
        except Exception as exc:  # gather every operation's failure, not only the first
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
