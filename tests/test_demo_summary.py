"""The demo's closing page: what each step printed is kept per step, and the page is written from what
the run left on S3 and in the registry (here: a real validation report on the session's S3)."""

from __future__ import annotations

import io

import pytest

from mlops.demo.summary import StoryRecorder, write_summary
from mlops.project.data import generate_data
from mlops.stages import validate_dataset
from tests.projects import EXAMPLES


def test_the_recorder_shows_everything_and_keeps_each_steps_lines():
    terminal = io.StringIO()
    story = StoryRecorder(terminal)
    print("before any step", file=story)
    story.begin(1, "platform")
    story.write("platform up\nS3 on 127.0.0.1")
    story.write(":9000\n")
    story.begin(2, "data")
    print("20000 rows", file=story)
    story.fail("S3 went away")
    assert terminal.getvalue() == "before any step\nplatform up\nS3 on 127.0.0.1:9000\n20000 rows\n"
    assert [s.output for s in story.steps] == [["platform up", "S3 on 127.0.0.1:9000"],
                                               ["20000 rows", "FAILED: S3 went away"]]
    assert [s.failed for s in story.steps] == [False, True]
    assert all(s.seconds >= 0 for s in story.steps)


@pytest.mark.parametrize("project", EXAMPLES, ids=lambda p: p.name)
def test_the_page_links_local_copies_of_the_published_reports(store, tmp_path, project):
    data = tmp_path / "raw.parquet"
    generate_data(project, 2_000, seed=5).to_parquet(data)
    published = validate_dataset(str(data), project.contract("raw"), tmp_path / "validation", publish_to=store)
    assert published.result.passed, published.result.summary()
    story = StoryRecorder(io.StringIO())
    story.begin(1, "a step that <b>escapes</b>")
    story.write("done\n")
    story.finish()
    page = write_summary(tmp_path / "demo", story.steps, store, "no-such-model", "every step passed")
    html = page.read_text()
    key = published.report_uri.split(f"s3://{store.bucket}/", 1)[1]
    assert (tmp_path / "demo" / key).read_text() == (tmp_path / "validation" / "report.html").read_text()
    assert f"href='{key}'" in html
    assert "a step that &lt;b&gt;escapes&lt;/b&gt;" in html and "<b>escapes" not in html
    assert html.count("data:image/png;base64,") >= 1  # the timeline, inline: the page needs nothing else


@pytest.mark.platform
def test_the_demo_refuses_to_retell_its_story_on_a_registry_that_holds_its_model(platform, tmp_path):
    """A second `make demo` on the same platform: one clear error before any data is written, nothing cleared."""
    from mlflow import MlflowClient

    from mlops.demo.run import run_demo
    from mlops.errors import ConfigError
    from tests.projects import CHURN, renamed
    from tests.registered import registered_versions

    project = renamed(CHURN, tmp_path, "demo-told-before")
    [version] = registered_versions(tmp_path, project, CHURN, versions=1)
    with pytest.raises(ConfigError, match=r"model demo-told-before already has 1 version\(s\) on the platform in "
                                          r".*tells its story from an empty registry.*mlops platform down"):
        run_demo(project)
    assert [v.version for v in MlflowClient().search_model_versions("name = 'demo-told-before'")] == [version]
    from mlops.platform.storage import ObjectStore

    assert ObjectStore(platform.s3_settings()).list_keys("datasets/demo-told-before/") == []
