"""Where a project comes from (mlops.project.source): an example by name, a folder, or an archive pushed to S3.

The archive tests run against the real local S3 server (the session ``platform``). An archive
is trusted only when the files it unpacks to have the digest its key names: anything else
(tampered, truncated, not a tar, a path outside the project, a link) is refused before any of
its code is imported, and leaves nothing behind in the cache.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
import yaml

from mlops.errors import ConfigError, StorageError
from mlops.project import (cluster_source, dataset_uri, examples_dir, fetch_project, load_project, push_project,
                           resolve_project)
from mlops.project.data import generate_data
from mlops.project.source import ARCHIVE_PREFIX, ENV_EXAMPLES, archive_bytes, example_names
from mlops.training.train import build_model
from tests.projects import CHURN, CREDIT, EXAMPLES, renamed

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
ANY_HEX = hashlib.sha256(b"any").hexdigest()


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:10]}"


def key_of(uri: str, store) -> str:
    return uri.removeprefix(f"s3://{store.bucket}/")


def hook_modules(digest: str) -> list[str]:
    """Modules imported from the project with this digest (hooks are imported under its first 16 hex digits)."""
    return [name for name in sys.modules if name.startswith(f"mlops_project_{digest.removeprefix('sha256:')[:16]}_")]


def tar_gz(members: list[tuple[str, bytes | None, str | None]]) -> bytes:
    """A tar.gz of (name, content, link target): a file when content is given, else a symbolic link."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# -- examples and folders -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["credit-default", "churn"])
def test_an_example_resolves_by_name_and_its_source_is_the_name(name):
    project = resolve_project(name)
    assert project.name == name and project.source == name
    assert project.root == (EXAMPLES_DIR / name).resolve() == (examples_dir() / name).resolve()
    assert project.digest.startswith("sha256:") and len(project.digest) == len("sha256:") + 64
    assert resolve_project(f"  {name}\n").digest == project.digest  # surrounding blanks are not part of a name


def test_the_examples_are_listed():
    assert example_names() == ["churn", "credit-default"]
    assert {p.name for p in EXAMPLES} == set(example_names())


def test_a_folder_resolves_to_its_path_and_loads_like_its_example(tmp_path):
    copy = renamed(CHURN, tmp_path, "churn-folder")
    project = resolve_project(str(copy.root))
    assert project.source == str(copy.root.resolve()) and project.root == copy.root.resolve()
    assert (project.entity, project.label, project.features) == (CHURN.entity, CHURN.label, CHURN.features)
    assert project.digest == copy.digest != CHURN.digest  # another project.yaml: another identity
    # The example's own folder, named by path, is the same files: the same digest, a path as its source.
    by_path = resolve_project(str(EXAMPLES_DIR / "credit-default"))
    assert by_path.digest == CREDIT.digest and by_path.source == str((EXAMPLES_DIR / "credit-default").resolve())


def test_examples_come_from_mlops_examples_when_it_is_set(tmp_path, monkeypatch):
    """The component image ships its examples elsewhere; $MLOPS_EXAMPLES says where."""
    shipped = tmp_path / "shipped"
    renamed(CHURN, shipped, "churn-shipped")
    monkeypatch.setenv(ENV_EXAMPLES, str(shipped))
    assert examples_dir() == shipped and example_names() == ["churn-shipped"]
    project = resolve_project("churn-shipped")
    assert project.source == "churn-shipped" and project.root == (shipped / "churn-shipped").resolve()
    with pytest.raises(ConfigError, match=r"no example project named 'churn' in .*shipped; known: \['churn-shipped'\]"):
        resolve_project("churn")


def test_an_unknown_example_is_refused_naming_the_known_ones():
    with pytest.raises(ConfigError, match=r"no example project named 'no-such-project' in .*examples; known: "
                                          r"\['churn', 'credit-default'\] \(or pass a project folder or an s3:// "
                                          r"archive\)"):
        resolve_project("no-such-project")


@pytest.mark.parametrize("ref", ["", "   ", None])
def test_no_project_named_is_refused(ref):
    with pytest.raises(ConfigError, match=r"project must name an example \(churn, credit-default\), a project folder "
                                          r"or an s3:// archive"):
        resolve_project(ref)


def test_a_folder_without_project_yaml_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "gate.yaml").write_text("decision_threshold: 0.5\n")
    with pytest.raises(ConfigError, match=rf"project {tmp_path / 'empty'}: no project.yaml in it"):
        resolve_project(str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match=r"not a folder \(a project is a folder with project.yaml\)"):
        resolve_project(str(tmp_path / "nowhere" / "project"))
    (tmp_path / "file.yaml").write_text("name: x\n")
    with pytest.raises(ConfigError, match="not a folder"):
        resolve_project(str(tmp_path / "file.yaml"))


def test_a_folder_with_a_broken_project_yaml_is_refused_naming_it(tmp_path):
    root = renamed(CREDIT, tmp_path, "credit-broken").root
    doc = yaml.safe_load((root / "project.yaml").read_text())
    (root / "project.yaml").write_text(yaml.safe_dump({**doc, "colour": "blue"}))
    with pytest.raises(ConfigError, match=rf"{root / 'project.yaml'}: unknown key\(s\) \['colour'\]"):
        resolve_project(str(root))


# -- what pods may name -----------------------------------------------------------------

def test_cluster_source_accepts_examples_and_archives_and_refuses_local_folders(tmp_path):
    assert cluster_source(CREDIT) == "credit-default" and cluster_source(CHURN) == "churn"
    assert cluster_source("churn") == "churn"
    uri = f"s3://mlops/{ARCHIVE_PREFIX}/churn/{ANY_HEX}.tar.gz"
    assert cluster_source(uri) == uri
    folder = renamed(CHURN, tmp_path, "churn-local")
    for local in (folder, str(folder.root), load_project(EXAMPLES_DIR / "churn")):
        with pytest.raises(ConfigError, match=r"is a folder on this machine, which pods cannot read: push it "
                                              r"\(`mlops project push .*`\) and use the s3:// URI it prints"):
            cluster_source(local)


def test_dataset_uri_defaults_to_the_projects_training_data():
    assert dataset_uri(CREDIT, "", "mlops") == "s3://mlops/datasets/credit/train.parquet"
    assert dataset_uri(CHURN, "  ", "other-bucket") == "s3://other-bucket/datasets/churn/train.parquet"
    assert dataset_uri(CHURN, " s3://b/elsewhere.parquet\n", "mlops") == "s3://b/elsewhere.parquet"
    assert dataset_uri(CREDIT, "/data/local.parquet", "mlops") == "/data/local.parquet"


# -- archives on S3 -----------------------------------------------------------------------

def test_an_archive_is_deterministic_and_holds_exactly_the_projects_files(tmp_path):
    copy = renamed(CHURN, tmp_path, "churn-archive")
    (copy.root / "__pycache__").mkdir()
    (copy.root / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\0cache")
    (copy.root / ".hidden").write_text("not part of the project")
    data = archive_bytes(copy.root)
    assert data == archive_bytes(copy.root)  # same files, same bytes (no times, owners or order in it)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = tar.getnames()
        assert all(m.isfile() and m.mtime == 0 and m.mode == 0o644 for m in tar.getmembers())
    expected = sorted(p.relative_to(CHURN.root).as_posix() for p in CHURN.root.rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith("."))
    assert names == expected and "project.yaml" in names and "model.py" in names


@pytest.mark.platform
def test_a_pushed_project_resolves_by_its_content_addressed_uri(store, tmp_path, monkeypatch):
    project = renamed(CHURN, tmp_path / "src", unique("churn-push"))
    writes = []
    real_put = store.put_bytes
    monkeypatch.setattr(store, "put_bytes", lambda data, key, *a, **k: writes.append(key) or real_put(data, key, *a, **k))

    uri = push_project(project.root, store)
    hex_digest = project.digest.removeprefix("sha256:")
    assert uri == f"s3://{store.bucket}/{ARCHIVE_PREFIX}/{project.name}/{hex_digest}.tar.gz"
    assert push_project(project.root, store) == uri  # pushed twice...
    assert writes == [key_of(uri, store)]  # ...written once
    assert store.get_bytes(key_of(uri, store)) == archive_bytes(project.root)
    # The same files in another folder are the same archive; a changed file is another one.
    twin = tmp_path / "twin" / project.name
    shutil.copytree(project.root, twin)
    assert push_project(twin, store) == uri and len(writes) == 1
    (twin / "README.md").write_text("a changed file\n")
    changed = push_project(twin, store)
    assert changed != uri and changed == f"s3://{store.bucket}/{ARCHIVE_PREFIX}/{project.name}/" \
        f"{load_project(twin).digest.removeprefix('sha256:')}.tar.gz" and len(writes) == 2

    pulled = resolve_project(uri, cache_dir=tmp_path / "cache", store=store)
    assert (pulled.name, pulled.digest, pulled.source) == (project.name, project.digest, uri)
    assert pulled.root == (tmp_path / "cache" / project.name / hex_digest).resolve()
    assert pulled.root != project.root.resolve()
    assert (pulled.root / "model.py").read_bytes() == (project.root / "model.py").read_bytes()
    assert cluster_source(pulled) == uri  # pods name it by the URI, never the cache folder
    # Its hooks run from the fetched files: the same data and model as from the folder it was pushed from.
    assert generate_data(pulled, 50).equals(generate_data(project, 50))
    assert type(build_model(pulled)).__name__ == "Pipeline"
    assert hook_modules(pulled.digest)


@pytest.mark.platform
def test_a_fetched_archive_is_cached_and_a_changed_cached_copy_is_fetched_again(store, tmp_path, monkeypatch):
    project = renamed(CREDIT, tmp_path / "src", unique("credit-cache"))
    uri = push_project(project.root, store)
    reads = []
    real_get = store.get_bytes
    monkeypatch.setattr(store, "get_bytes", lambda key, *a, **k: reads.append(key) or real_get(key, *a, **k))
    cache = tmp_path / "cache"
    first = fetch_project(uri, cache, store)
    assert fetch_project(uri, cache, store) == first and len(reads) == 1  # verified once, then reused
    (first / "gate.yaml").write_text("decision_threshold: 0.01\n")  # the cached copy is changed on this machine
    again = fetch_project(uri, cache, store)
    assert again == first and len(reads) == 2
    assert (again / "gate.yaml").read_bytes() == (project.root / "gate.yaml").read_bytes()
    assert resolve_project(uri, cache_dir=cache, store=store).digest == project.digest


@pytest.mark.platform
def test_a_tampered_archive_is_refused_and_nothing_of_it_is_imported(store, tmp_path):
    project = renamed(CHURN, tmp_path / "src", unique("churn-tamper"))
    uri = push_project(project.root, store)
    key = key_of(uri, store)
    # Another gate (and a model hook that would leave a mark if it were ever imported), repacked by the
    # suite's own packer and written over the pushed object at the same key.
    marker = tmp_path / "imported.txt"
    tampered = tmp_path / "tampered" / project.name
    renamed(project, tmp_path / "tampered", project.name)
    gate = yaml.safe_load((tampered / "gate.yaml").read_text())
    gate["decision_threshold"] = 0.01
    (tampered / "gate.yaml").write_text(yaml.safe_dump(gate))
    (tampered / "model.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n"
                                       + (tampered / "model.py").read_text())
    tampered_digest = load_project(tampered).digest
    assert tampered_digest != project.digest
    store.put_bytes(archive_bytes(tampered), key)

    cache = tmp_path / "cache"
    with pytest.raises(StorageError) as refused:
        resolve_project(uri, cache_dir=cache, store=store)
    message = str(refused.value)
    assert f"project archive {uri} unpacks to files with digest {tampered_digest}, not the {project.digest} its " \
           "key names: it was changed after it was pushed; refusing it (push it again)" == message
    assert not marker.exists() and hook_modules(tampered_digest) == []
    folder = cache / project.name
    assert list(folder.iterdir()) == []  # neither the project nor a half-unpacked staging folder is left
    # Pushing the genuine project again repairs it: the object is back and resolves.
    store.put_bytes(archive_bytes(project.root), key)
    assert resolve_project(uri, cache_dir=cache, store=store).digest == project.digest


@pytest.mark.platform
@pytest.mark.parametrize("content, message", [
    (lambda root: archive_bytes(root)[:200], "is not a readable tar.gz"),
    (lambda root: b"this is not a tar archive", "is not a readable tar.gz"),
    (lambda root: archive_bytes(root)[: len(archive_bytes(root)) // 2], "is not a readable tar.gz"),
    (lambda root: tar_gz([("project.yaml", b"name: x\n", None), ("../escape.py", b"print('out')\n", None)]),
     r"holds '\.\./escape\.py', which is not a plain file inside the project; refusing it"),
    (lambda root: tar_gz([("project.yaml", b"name: x\n", None), ("hooks/../../escape.py", b"x = 1\n", None)]),
     r"holds 'hooks/\.\./\.\./escape\.py', which is not a plain file"),
    (lambda root: tar_gz([("project.yaml", b"name: x\n", None), ("model.py", None, "/etc/passwd")]),
     r"holds 'model\.py', which is not a plain file inside the project"),
    (lambda root: tar_gz([("features.py", None, "../../outside.py"), ("project.yaml", b"name: x\n", None)]),
     r"holds 'features\.py', which is not a plain file"),
], ids=["truncated-header", "not-a-tar", "truncated-half", "dot-dot", "nested-dot-dot", "symlink", "relative-symlink"])
def test_an_unreadable_or_escaping_archive_is_refused(store, tmp_path, content, message):
    name = unique("bad-archive")
    uri = f"s3://{store.bucket}/{ARCHIVE_PREFIX}/{name}/{ANY_HEX}.tar.gz"
    store.ensure_bucket()
    store.put_bytes(content(CHURN.root), key_of(uri, store))
    cache = tmp_path / "cache"
    with pytest.raises(StorageError, match=rf"project archive {uri} {message}"):
        resolve_project(uri, cache_dir=cache, store=store)
    assert list((cache / name).iterdir()) == []  # no project, no staging folder
    assert not (cache / "escape.py").exists() and not (cache / name / "escape.py").exists()
    assert not list(tmp_path.rglob("escape.py")) and not list(tmp_path.rglob("outside.py"))


@pytest.mark.platform
def test_an_archive_with_an_absolute_path_is_refused(store, tmp_path):
    target = tmp_path / "absolute-escape.py"
    uri = f"s3://{store.bucket}/{ARCHIVE_PREFIX}/{unique('abs-archive')}/{ANY_HEX}.tar.gz"
    store.ensure_bucket()
    store.put_bytes(tar_gz([(str(target), b"x = 1\n", None)]), key_of(uri, store))
    with pytest.raises(StorageError, match=r"which is not a plain file inside the project"):
        fetch_project(uri, tmp_path / "cache", store)
    assert not target.exists()


@pytest.mark.platform
def test_a_missing_archive_is_refused_naming_the_store(store, tmp_path):
    uri = f"s3://{store.bucket}/{ARCHIVE_PREFIX}/{unique('never-pushed')}/{ANY_HEX}.tar.gz"
    with pytest.raises(StorageError, match=rf"project archive {uri} does not exist on S3 at {store.settings.url}"):
        resolve_project(uri, cache_dir=tmp_path / "cache", store=store)


@pytest.mark.parametrize("key", [
    f"{ARCHIVE_PREFIX}/churn.tar.gz",
    f"{ARCHIVE_PREFIX}/churn/{ANY_HEX[:63]}.tar.gz",
    f"{ARCHIVE_PREFIX}/churn/{ANY_HEX.upper()}.tar.gz",
    f"{ARCHIVE_PREFIX}/Churn/{ANY_HEX}.tar.gz",
    f"{ARCHIVE_PREFIX}/churn/{ANY_HEX}.zip",
    f"{ARCHIVE_PREFIX}/churn/v1/{ANY_HEX}.tar.gz",
    f"datasets/churn/{ANY_HEX}.tar.gz",
])
def test_a_key_push_did_not_write_is_refused_before_s3_is_asked(key, tmp_path):
    """No store is given: the key's shape alone refuses it, before S3 is asked or a cache folder is made."""
    with pytest.raises(ConfigError, match=r"is not a pushed project: its key must be projects/<name>/<sha256>\.tar\.gz"):
        resolve_project(f"s3://mlops/{key}", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("uri, message", [
    ("s3://mlops", "must name a bucket and a key"),
    (f"s3://mlops/{ARCHIVE_PREFIX}/../{ARCHIVE_PREFIX}/churn/{ANY_HEX}.tar.gz", "is not a plain relative path"),
])
def test_a_malformed_s3_uri_is_refused(uri, message, tmp_path):
    with pytest.raises(StorageError, match=message):
        resolve_project(uri, cache_dir=tmp_path / "cache")


@pytest.mark.platform
def test_a_folder_that_is_not_a_project_is_not_pushed(store, tmp_path):
    name = unique("not-a-project")
    (tmp_path / name).mkdir()
    with pytest.raises(ConfigError, match="no project.yaml in it"):
        push_project(tmp_path / name, store)
    broken = renamed(CHURN, tmp_path, unique("churn-unpushable"))
    (broken.root / "gate.yaml").unlink()
    with pytest.raises(ConfigError, match=r"gate: 'gate.yaml' does not exist"):
        push_project(broken.root, store)
    assert store.list_keys(f"{ARCHIVE_PREFIX}/{broken.name}/") == []
