import pytest

from mlops.errors import ConfigError
from mlops.platform.settings import mlflow_tracking_uri, parse_endpoint, s3_settings

ENV = {"MLOPS_S3_ENDPOINT": "http://127.0.0.1:9000", "AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}


@pytest.mark.parametrize("value, expected", [
    ("http://127.0.0.1:9000", ("127.0.0.1:9000", False)),
    ("https://minio.example.com", ("minio.example.com", True)),
    ("minio.mlops.svc:9000", ("minio.mlops.svc:9000", False)),
    ("http://minio:9000/", ("minio:9000", False)),
])
def test_endpoint_forms(value, expected):
    assert parse_endpoint(value) == expected


@pytest.mark.parametrize("value, message", [
    ("ftp://host:21", "not an http"),
    ("http://host:9000/bucket", "must not contain a path"),
    ("http://host:99999", "invalid port"),
])
def test_bad_endpoints_name_the_variable(value, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_endpoint(value)
    assert "MLOPS_S3_ENDPOINT" in str(info.value)


def test_s3_settings_from_env_and_defaults():
    s3 = s3_settings(ENV)
    assert (s3.endpoint, s3.secure, s3.bucket, s3.region) == ("127.0.0.1:9000", False, "mlops", "us-east-1")
    assert "s3cr3t" not in repr(s3)


@pytest.mark.parametrize("missing", sorted(ENV))
def test_missing_setting_is_named(missing):
    env = {k: v for k, v in ENV.items() if k != missing}
    with pytest.raises(ConfigError, match=f"{missing} is not set"):
        s3_settings(env)


def test_tracking_uri_must_be_http():
    assert mlflow_tracking_uri({"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000/"}) == "http://127.0.0.1:5000"
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_URI"):
        mlflow_tracking_uri({"MLFLOW_TRACKING_URI": "sqlite:///x.db"})
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_URI is not set"):
        mlflow_tracking_uri({})
