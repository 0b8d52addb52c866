"""The contract every :class:`~ragkit.backends.catalog.Catalog` must pass, as a pytest class.

Subclass :class:`CatalogContract` in a test module named ``test_*.py``, with a class
name that starts with ``Test``, and provide ``catalog`` (a catalog of an engine) and
``reopen`` (a second, independent catalog object on the same engine, as another worker
process would open)::

    import pytest
    from ragkit.testing.catalog_contract import CatalogContract

    class TestMyCatalog(CatalogContract):
        @pytest.fixture
        def catalog(self, tmp_path):
            catalog = MyCatalog(tmp_path)
            yield catalog
            catalog.close()

        @pytest.fixture
        def reopen(self, tmp_path):
            return lambda: MyCatalog(tmp_path)

The engine may hold other kbs, keys and jobs (one database server for a whole test
session): every test works under tenants of its own, with random names. Optional
hooks: ``rag_options`` (keyword arguments for :class:`~ragkit.RAG` on the catalog's
kbs, e.g. ``{"store": "memory"}`` for folders) and ``stored_text`` (everything the
engine keeps for keys, as text, to check that no secret is stored in clear). This
module needs pytest.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from ragkit.backends.catalog import ApiKey, Catalog, JobRecord, KbInfo, RateBuckets
from ragkit.backends.keys import authenticate, create_key, hash_secret, parse_key
from ragkit.errors import ConfigurationError
from ragkit.testing.fakes import FakeEmbedder

__all__ = ["CatalogContract", "Reopen"]

#: Opens another catalog object on the same engine (another worker's view).
Reopen = Callable[[], Catalog]


class CatalogContract:
    """Tests that pin down the :class:`~ragkit.backends.catalog.Catalog` behaviour:
    kbs per tenant and apart, keys kept hashed, jobs per tenant, shared state.

    Override ``catalog`` and ``reopen`` (see the module docstring); optionally
    ``rag_options`` and ``stored_text``.
    """

    @pytest.fixture
    def catalog(self) -> Catalog:
        raise NotImplementedError("Override the `catalog` fixture to return a catalog.")

    @pytest.fixture
    def reopen(self) -> Reopen:
        raise NotImplementedError(
            "Override the `reopen` fixture: a callable opening a second catalog object "
            "on the same engine."
        )

    @pytest.fixture
    def rag_options(self) -> dict[str, Any]:
        """Keyword arguments for ``RAG`` on a kb of the catalog (besides the embedder)."""
        return {}

    @pytest.fixture
    def stored_text(self) -> Callable[[], str] | None:
        """Everything the engine keeps for API keys, as text; None skips that check."""
        return None

    @pytest.fixture
    def tenants(self) -> Callable[[], str]:
        """Makes tenant names no other test uses (the engine may be shared)."""
        return lambda: "t" + secrets.token_hex(6)

    @pytest.fixture
    def reopened(self, reopen: Reopen) -> Iterator[Callable[[], Catalog]]:
        """Opens second catalogs, closed after the test."""
        opened: list[Catalog] = []

        def open_one() -> Catalog:
            opened.append(reopen())
            return opened[-1]

        yield open_one
        for other in opened:
            other.close()

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def _add(info: KbInfo, options: dict[str, Any], folder: Path, name: str, text: str) -> None:
        from ragkit.rag import RAG

        path = folder / "docs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        with RAG(info.settings, embedder=FakeEmbedder(), tenant=info.tenant, **options) as rag:
            rag.add(path)

    @staticmethod
    def _found(info: KbInfo, options: dict[str, Any], query: str) -> list[str]:
        from ragkit.rag import RAG

        with RAG(info.settings, embedder=FakeEmbedder(), tenant=info.tenant, **options) as rag:
            return [hit.chunk.text for hit in rag.retrieve(query)]

    # -- knowledge bases ---------------------------------------------------------------

    def test_fits_the_protocol(self, catalog: Catalog) -> None:
        assert isinstance(catalog, Catalog)
        assert isinstance(catalog.location, str)
        assert catalog.location

    def test_kbs_of_two_tenants_with_one_name_live_apart(
        self,
        catalog: Catalog,
        tenants: Callable[[], str],
        rag_options: dict[str, Any],
        tmp_path: Path,
    ) -> None:
        acme, globex = tenants(), tenants()
        before = time.time()
        a = catalog.create_kb(acme, "docs")
        b = catalog.create_kb(globex, "docs")
        assert (a.tenant, a.name, b.tenant, b.name) == (acme, "docs", globex, "docs")
        assert a.settings != b.settings
        assert a.settings == catalog.settings(acme, "docs")
        assert before - 5 <= a.created <= time.time() + 5
        self._add(a, rag_options, tmp_path, "plan.txt", "The secret plan is rockets.")
        assert self._found(a, rag_options, "secret plan rockets")
        assert self._found(b, rag_options, "secret plan rockets") == []
        assert [(kb.tenant, kb.name) for kb in catalog.list_kbs(acme)] == [(acme, "docs")]
        assert [kb.settings for kb in catalog.list_kbs(globex)] == [b.settings]
        everyone = [(kb.tenant, kb.name) for kb in catalog.list_kbs()]
        assert (acme, "docs") in everyone
        assert (globex, "docs") in everyone
        found = catalog.get_kb(globex, "docs")
        assert found is not None
        assert (found.tenant, found.name, found.settings) == (globex, "docs", b.settings)

    def test_a_kb_of_another_tenant_is_not_reachable(
        self, catalog: Catalog, tenants: Callable[[], str]
    ) -> None:
        owner, other = tenants(), tenants()
        catalog.create_kb(owner, "private")
        catalog.create_kb(owner, "second")
        assert catalog.get_kb(other, "private") is None
        assert catalog.list_kbs(other) == []
        assert not catalog.delete_kb(other, "private")
        assert [kb.name for kb in catalog.list_kbs(owner)] == ["private", "second"]
        assert catalog.get_kb(owner, "nope") is None

    def test_names_that_cannot_be_a_kb_are_refused_or_not_found(
        self, catalog: Catalog, tenants: Callable[[], str]
    ) -> None:
        tenant = tenants()
        with pytest.raises(ConfigurationError, match="tenant"):
            catalog.create_kb("../etc", "docs")
        with pytest.raises(ConfigurationError, match="kb name"):
            catalog.create_kb(tenant, "a__b")
        with pytest.raises(ConfigurationError, match="kb name"):
            catalog.create_kb(tenant, "../x")
        for bad_tenant, bad_name in ((tenant, "../x"), (tenant, "Docs; DROP"), ("A B", "docs")):
            assert catalog.get_kb(bad_tenant, bad_name) is None
            assert not catalog.delete_kb(bad_tenant, bad_name)
        assert catalog.list_kbs(tenant) == []

    def test_creating_a_kb_twice_is_refused(
        self, catalog: Catalog, tenants: Callable[[], str]
    ) -> None:
        tenant = tenants()
        first = catalog.create_kb(tenant, "docs")
        with pytest.raises(ConfigurationError, match="exists already"):
            catalog.create_kb(tenant, "docs")
        assert catalog.list_kbs(tenant) == [first]

    def test_deleting_a_kb_removes_its_data_and_jobs(
        self,
        catalog: Catalog,
        tenants: Callable[[], str],
        rag_options: dict[str, Any],
        tmp_path: Path,
    ) -> None:
        tenant = tenants()
        info = catalog.create_kb(tenant, "docs")
        kept = catalog.create_kb(tenant, "kept")
        self._add(info, rag_options, tmp_path, "a.txt", "Zebras graze on the savanna.")
        self._add(kept, rag_options, tmp_path, "b.txt", "Zebras also live in zoos.")
        now = time.time()
        catalog.save_job(JobRecord("jd1", tenant, "docs", "succeeded", "upload", now, now))
        catalog.save_job(JobRecord("jk1", tenant, "kept", "succeeded", "upload", now, now))
        assert catalog.delete_kb(tenant, "docs")
        assert catalog.get_kb(tenant, "docs") is None
        assert [kb.name for kb in catalog.list_kbs(tenant)] == ["kept"]
        assert catalog.get_job(tenant, "jd1") is None
        assert catalog.get_job(tenant, "jk1") is not None
        assert not catalog.delete_kb(tenant, "docs")
        again = catalog.create_kb(tenant, "docs")
        assert self._found(again, rag_options, "zebras savanna") == []
        assert self._found(kept, rag_options, "zebras zoos")

    # -- keys --------------------------------------------------------------------------

    def test_a_key_is_kept_hashed_and_authenticates_until_revoked(
        self,
        catalog: Catalog,
        tenants: Callable[[], str],
        stored_text: Callable[[], str] | None,
    ) -> None:
        tenant, other_tenant = tenants(), tenants()
        key, whole = create_key(catalog, tenant, ["write", "read"], name="ci")
        assert key.scopes == ("read", "write")
        parsed = parse_key(whole)
        assert parsed is not None
        key_id, secret = parsed
        assert key_id == key.id
        found = catalog.find_key(key.id)
        assert found is not None
        assert found[0] == key
        assert found[1] == hash_secret(secret)
        assert secret not in found[1]
        if stored_text is not None:
            text = stored_text()
            assert hash_secret(secret) in text  # the hook does show the keys
            assert secret not in text
            assert whole not in text
        assert authenticate(catalog, whole) == key
        wrong = whole[:-1] + ("A" if whole[-1] != "A" else "B")
        assert authenticate(catalog, wrong) is None
        assert authenticate(catalog, "rk_000000000000_nothing") is None
        assert authenticate(catalog, "Bearer nonsense") is None
        other, _ = create_key(catalog, other_tenant, ["admin"])
        assert [k.id for k in catalog.list_keys(tenant)] == [key.id]
        everyone = {k.id for k in catalog.list_keys()}
        assert {key.id, other.id} <= everyone
        assert catalog.revoke_key(key.id)
        assert authenticate(catalog, whole) is None
        revoked = catalog.find_key(key.id)
        assert revoked is not None
        assert revoked[0].revoked
        assert catalog.find_key(other.id) is not None
        assert not catalog.find_key(other.id)[0].revoked  # type: ignore[index]
        assert not catalog.revoke_key("ffffffffffff")
        assert catalog.find_key("ffffffffffff") is None

    def test_keys_are_listed_newest_first(
        self, catalog: Catalog, tenants: Callable[[], str]
    ) -> None:
        tenant = tenants()
        for i, created in enumerate((100.0, 300.0, 200.0)):
            key = ApiKey(secrets.token_hex(6), tenant, ("read",), f"k{i}", created)
            catalog.add_key(key, hash_secret(f"s{i}"))
        assert [k.name for k in catalog.list_keys(tenant)] == ["k1", "k2", "k0"]
        assert [k.created for k in catalog.list_keys(tenant)] == [300.0, 200.0, 100.0]

    # -- jobs --------------------------------------------------------------------------

    def test_jobs_are_found_by_tenant_and_idempotency_key(
        self, catalog: Catalog, tenants: Callable[[], str]
    ) -> None:
        acme, globex = tenants(), tenants()
        now = time.time()
        job_id = "j" + secrets.token_hex(8)
        job = JobRecord(job_id, acme, "docs", "queued", "upload", now, now, "key-1",
                        {"files": 2, "nested": {"errors": [{"source": "a.pdf"}]}})  # fmt: skip
        catalog.save_job(job)
        assert catalog.get_job(acme, job_id) == job
        assert catalog.get_job(globex, job_id) is None
        assert catalog.find_job(acme, "docs", "key-1") == job
        assert catalog.find_job(globex, "docs", "key-1") is None
        assert catalog.find_job(acme, "other", "key-1") is None
        assert catalog.find_job(acme, "docs", "key-2") is None
        done = JobRecord(**{**job.__dict__, "state": "succeeded", "updated": now + 1.5,
                            "worker": "w1", "heartbeat": now + 1.25})  # fmt: skip
        catalog.save_job(done)
        assert catalog.get_job(acme, job_id) == done
        plain = JobRecord("j" + secrets.token_hex(8), acme, "docs", "running", "sync", now, now)
        catalog.save_job(plain)
        assert catalog.get_job(acme, plain.id) == plain

    def test_a_large_job_detail_is_kept_whole(
        self, catalog: Catalog, tenants: Callable[[], str]
    ) -> None:
        tenant = tenants()
        errors = [{"source": f"folder/file-{i:05d}.pdf", "reason": "no text"} for i in range(3000)]
        now = time.time()
        job = JobRecord("j" + secrets.token_hex(8), tenant, "docs", "partial", "upload", now,
                        now, None, {"errors": errors})  # fmt: skip
        catalog.save_job(job)
        assert catalog.get_job(tenant, job.id) == job
        shorter = JobRecord(**{**job.__dict__, "detail": {"errors": errors[:2]}})
        catalog.save_job(shorter)
        assert catalog.get_job(tenant, job.id) == shorter

    def test_a_job_for_a_taken_idempotency_key_is_not_added(
        self, catalog: Catalog, tenants: Callable[[], str]
    ) -> None:
        acme, globex = tenants(), tenants()

        def job(tenant: str, kb: str, key: str | None) -> JobRecord:
            now = time.time()
            return JobRecord("j" + secrets.token_hex(8), tenant, kb, "queued", "upload", now,
                             now, key, {"request_hash": secrets.token_hex(4)})  # fmt: skip

        first = catalog.add_job(job(acme, "docs", "upload-1"))  # as stored
        assert catalog.get_job(acme, first.id) == first
        second = job(acme, "docs", "upload-1")
        assert catalog.add_job(second) == first
        assert catalog.get_job(acme, second.id) is None
        assert catalog.find_job(acme, "docs", "upload-1") == first
        running = JobRecord(**{**first.__dict__, "state": "running", "updated": first.updated + 1})
        catalog.save_job(running)  # updating the holder keeps its key
        assert catalog.add_job(job(acme, "docs", "upload-1")) == running
        # The same key on another kb or for another tenant, and jobs without a key: new.
        others = [job(acme, "other", "upload-1"), job(globex, "docs", "upload-1"),
                  job(acme, "docs", None), job(acme, "docs", None)]  # fmt: skip
        for new in others:
            added = catalog.add_job(new)
            assert added.id == new.id
            assert catalog.get_job(new.tenant, new.id) == added

    def test_workers_adding_jobs_for_one_key_at_once_keep_one(
        self,
        catalog: Catalog,
        reopened: Callable[[], Catalog],
        tenants: Callable[[], str],
    ) -> None:
        tenant = tenants()
        workers = [catalog, *(reopened() for _ in range(3))]
        now = time.time()
        jobs = [JobRecord("j" + secrets.token_hex(8), tenant, "docs", "queued", "upload", now,
                          now, "same-key", {"worker": i}) for i in range(len(workers))]  # fmt: skip
        adds = [partial(w.add_job, j) for w, j in zip(workers, jobs, strict=True)]
        kept = dict(enumerate(_at_once(adds)))
        winners = {job.id for job in kept.values()}
        assert len(winners) == 1, kept
        (winner,) = winners
        assert winner in {job.id for job in jobs}
        for job in jobs:
            stored = catalog.get_job(tenant, job.id)
            assert (stored is not None) == (job.id == winner)
        assert catalog.find_job(tenant, "docs", "same-key") == kept[0]

    # -- request rates (catalogs with RateBuckets) --------------------------------------

    @staticmethod
    def _buckets(catalog: Catalog) -> RateBuckets:
        if not isinstance(catalog, RateBuckets):
            pytest.skip("this catalog keeps no rate buckets (servers count per worker)")
        return catalog

    def test_a_rate_bucket_allows_its_burst_then_refills(self, catalog: Catalog) -> None:
        buckets = self._buckets(catalog)
        bucket = "key:" + secrets.token_hex(6)
        assert [buckets.take_request(bucket, 60, 2) for _ in range(2)] == [0.0, 0.0]
        assert buckets.take_request(bucket, 60, 2) == 1.0  # a request a second
        assert buckets.take_request("key:" + secrets.token_hex(6), 60, 2) == 0.0  # apart
        slow = "key:" + secrets.token_hex(6)
        assert buckets.take_request(slow, 1, 1) == 0.0
        assert buckets.take_request(slow, 1, 1) in (59.0, 60.0)  # a request a minute
        fast = "key:" + secrets.token_hex(6)
        assert buckets.take_request(fast, 600, 1) == 0.0
        time.sleep(0.25)  # 10 a second: refilled
        assert buckets.take_request(fast, 600, 1) == 0.0

    def test_workers_share_a_rate_bucket(
        self, catalog: Catalog, reopened: Callable[[], Catalog]
    ) -> None:
        self._buckets(catalog)
        workers = [self._buckets(c) for c in (catalog, *(reopened() for _ in range(3)))]
        bucket = "key:" + secrets.token_hex(6)

        def four(worker: RateBuckets) -> list[float]:
            return [worker.take_request(bucket, 1, 5) for _ in range(4)]

        waits = [wait for taken in _at_once([partial(four, w) for w in workers]) for wait in taken]
        assert len(waits) == 16
        assert waits.count(0.0) == 5  # the burst, across all workers together

    # -- shared state ------------------------------------------------------------------

    def test_a_second_catalog_sees_the_first_ones_writes(
        self,
        catalog: Catalog,
        reopened: Callable[[], Catalog],
        tenants: Callable[[], str],
    ) -> None:
        tenant = tenants()
        other = reopened()
        info = catalog.create_kb(tenant, "shared")
        seen = other.get_kb(tenant, "shared")
        assert seen is not None
        assert (seen.tenant, seen.name, seen.settings) == (info.tenant, info.name, info.settings)
        assert [kb.name for kb in other.list_kbs(tenant)] == ["shared"]
        with pytest.raises(ConfigurationError, match="exists already"):
            other.create_kb(tenant, "shared")
        key, whole = create_key(catalog, tenant, ["read"])
        assert authenticate(other, whole) == key
        now = time.time()
        job = JobRecord("j" + secrets.token_hex(8), tenant, "shared", "running", "upload",
                        now, now, "idem")  # fmt: skip
        catalog.save_job(job)
        assert other.get_job(tenant, job.id) == job
        assert other.find_job(tenant, "shared", "idem") == job
        canceled = JobRecord(**{**job.__dict__, "detail": {"cancel_requested": True}})
        other.save_job(canceled)
        assert catalog.get_job(tenant, job.id) == canceled
        assert other.revoke_key(key.id)
        assert authenticate(catalog, whole) is None
        assert other.delete_kb(tenant, "shared")
        assert catalog.get_kb(tenant, "shared") is None
        assert catalog.list_kbs(tenant) == []


def _at_once(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` in threads released together (as workers racing); their results,
    in order. An exception in any of them is raised here, in the test's thread."""
    start = threading.Barrier(len(calls))
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait(timeout=30)
            results[i] = calls[i]()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    assert len(results) == len(calls), "a worker did not finish within 60 s"
    return [results[i] for i in range(len(calls))]
