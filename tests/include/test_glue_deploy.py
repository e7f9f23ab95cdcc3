"""Versioned deployment of the Glue scripts, read back from the stack's S3."""

from __future__ import annotations

import io
import shutil
import zipfile

import pytest

from include.glue_deploy import GLUE_SCRIPTS_DIR, build_package_zip, deploy, scripts_version


@pytest.fixture()
def scripts_copy(tmp_path):
    target = tmp_path / "glue_scripts"
    shutil.copytree(GLUE_SCRIPTS_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_version_and_zip_depend_on_contents_only(scripts_copy):
    assert scripts_version(scripts_copy) == scripts_version(GLUE_SCRIPTS_DIR)
    assert build_package_zip(scripts_copy) == build_package_zip(GLUE_SCRIPTS_DIR)

    transforms = scripts_copy / "hardware_correlation" / "transforms.py"
    transforms.write_text(transforms.read_text() + "\n# changed\n")
    assert scripts_version(scripts_copy) != scripts_version(GLUE_SCRIPTS_DIR)

    entry = scripts_copy / "etl_job.py"
    before = scripts_version(scripts_copy)
    entry.write_text(entry.read_text() + "\n# changed\n")
    assert scripts_version(scripts_copy) != before


def test_zip_holds_the_transform_package():
    names = zipfile.ZipFile(io.BytesIO(build_package_zip())).namelist()
    assert "hardware_correlation/__init__.py" in names
    assert "hardware_correlation/transforms.py" in names
    assert all(name.startswith("hardware_correlation/") for name in names)


@pytest.mark.stack
def test_deploy_uploads_once_under_a_version_prefix(stack, aws, scripts_copy):
    s3 = aws("s3")
    bucket = stack["ARTIFACTS_BUCKET"]

    first = deploy(s3, bucket, prefix="test-deploy", scripts_dir=scripts_copy)
    assert first.etl_script == f"s3://{bucket}/test-deploy/{first.version}/etl_job.py"
    key = f"test-deploy/{first.version}/etl_job.py"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == (scripts_copy / "etl_job.py").read_bytes()
    uploaded_at = s3.head_object(Bucket=bucket, Key=key)["LastModified"]

    again = deploy(s3, bucket, prefix="test-deploy", scripts_dir=scripts_copy)
    assert again == first
    assert s3.head_object(Bucket=bucket, Key=key)["LastModified"] == uploaded_at

    (scripts_copy / "load_job.py").write_text((scripts_copy / "load_job.py").read_text() + "\n# changed\n")
    changed = deploy(s3, bucket, prefix="test-deploy", scripts_dir=scripts_copy)
    assert changed.version != first.version
    # The earlier version stays in place for runs that still use it.
    assert s3.head_object(Bucket=bucket, Key=key)
