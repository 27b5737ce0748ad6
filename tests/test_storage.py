"""Artifact I/O against the real local S3 server (SeaweedFS via the minio client)."""

import io
import time

import pytest

from mlops.errors import StorageError
from mlops.platform.settings import S3Settings
from mlops.platform.storage import MANIFEST, ObjectStore, join_key, parse_s3_uri, safe_key, sha256_file

pytestmark = pytest.mark.platform


def test_file_round_trip_records_and_verifies_checksum(store, tmp_path):
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights" * 1000)
    put = store.put_file(src, "tests/roundtrip/model.bin")
    assert put.sha256 == sha256_file(src) and put.size == 7000
    assert store.stat("tests/roundtrip/model.bin").sha256 == put.sha256
    got = store.get_file("tests/roundtrip/model.bin", tmp_path / "out" / "model.bin")
    assert (tmp_path / "out" / "model.bin").read_bytes() == src.read_bytes()
    assert got.sha256 == put.sha256


def test_tampered_object_is_refused_and_nothing_is_left(store, tmp_path):
    store.put_bytes(b"good content", "tests/tamper/blob")
    recorded = store.stat("tests/tamper/blob").sha256
    # Someone replaces the bytes behind our back, keeping the old checksum metadata.
    store.client.put_object(store.bucket, "tests/tamper/blob", io.BytesIO(b"evil content"), 12,
                            metadata={"sha256": recorded})
    target = tmp_path / "blob"
    with pytest.raises(StorageError, match="corrupt or was tampered with"):
        store.get_file("tests/tamper/blob", target)
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(StorageError, match="tampered"):
        store.get_bytes("tests/tamper/blob")


def test_published_directory_round_trip(store, tmp_path):
    src = tmp_path / "artifact"
    (src / "sub").mkdir(parents=True)
    (src / "MLmodel").write_text("flavors: {}")
    (src / "sub" / "model.skops").write_bytes(b"\x00\x01" * 500)
    manifest = store.publish_dir(src, "tests/published/v1")
    assert manifest.key == f"tests/published/v1/{MANIFEST}"
    assert set(store.read_manifest("tests/published/v1")) == {"MLmodel", "sub/model.skops"}
    out = tmp_path / "copy"
    store.download_dir("tests/published/v1", out)
    assert (out / "sub" / "model.skops").read_bytes() == b"\x00\x01" * 500
    assert (out / "MLmodel").read_text() == "flavors: {}"


def test_prefix_without_manifest_is_not_readable(store, tmp_path):
    """Files uploaded but not yet published (no manifest) are invisible to readers."""
    store.put_bytes(b"half", "tests/unpublished/part-0")
    with pytest.raises(StorageError, match="not a published artifact"):
        store.download_dir("tests/unpublished", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_manifest_mismatch_is_detected(store, tmp_path):
    src = tmp_path / "a"
    src.mkdir()
    (src / "f").write_bytes(b"v1")
    store.publish_dir(src, "tests/overwritten")
    store.put_bytes(b"v2-replaced", "tests/overwritten/f")  # changed after publishing
    with pytest.raises(StorageError, match="does not match .* recorded in the manifest"):
        store.download_dir("tests/overwritten", tmp_path / "out")


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/abs/key", "a//b", "a\\b", "a/./b", "", ".."])
def test_keys_cannot_escape_their_prefix(key):
    with pytest.raises(StorageError, match="not a plain relative path"):
        safe_key(key)


def test_join_key_refuses_traversal_in_any_part():
    assert join_key("models/credit", "v1", "MLmodel") == "models/credit/v1/MLmodel"
    with pytest.raises(StorageError):
        join_key("models/credit", "../../other-team/secret")


def test_parse_s3_uri():
    assert parse_s3_uri("s3://mlops/datasets/x.parquet") == ("mlops", "datasets/x.parquet")
    for bad in ("s3://mlops", "s3:///key", "http://x/y"):
        with pytest.raises(StorageError):
            parse_s3_uri(bad)


def test_ensure_bucket_is_idempotent(store):
    assert store.ensure_bucket("scratch-bucket") == "scratch-bucket"
    assert store.ensure_bucket("scratch-bucket") == "scratch-bucket"
    assert store.client.bucket_exists("scratch-bucket")


def test_missing_object_is_reported_as_missing(store, tmp_path):
    assert store.stat("tests/nope") is None
    with pytest.raises(StorageError, match="does not exist"):
        store.get_file("tests/nope", tmp_path / "nope")
    assert not (tmp_path / "nope").exists()


def test_wrong_credentials_fail_with_a_clear_message(platform):
    good = platform.s3_settings()
    bad = S3Settings(good.endpoint, False, good.access_key, "not-the-secret")
    with pytest.raises(StorageError) as info:
        ObjectStore(bad).check()
    message = str(info.value)
    assert "rejected the credentials" in message and good.access_key in message
    assert "not-the-secret" not in message


def test_unreachable_store_fails_fast():
    from mlops.platform.local import free_ports

    port = free_ports(["dead"])["dead"]
    store = ObjectStore(S3Settings(f"127.0.0.1:{port}", False, "k", "s"))
    start = time.monotonic()
    with pytest.raises(StorageError, match=rf"S3 at http://127.0.0.1:{port} is unreachable"):
        store.check()
    assert time.monotonic() - start < 10  # bounded retries, not minutes (a behaviour, not a benchmark)
