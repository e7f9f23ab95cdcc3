"""Versioned deployment of the Glue scripts, read back from the stack's S3."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections import Counter

import pytest

from include.glue_deploy import (
    ENTRY_POINTS, GLUE_SCRIPTS_DIR, TRANSFORM_PACKAGE, build_package_zip, deploy, scripts_version,
)
from tests.support import aws_client


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


def test_zip_holds_the_transform_package_and_its_version():
    archive = zipfile.ZipFile(io.BytesIO(build_package_zip()))
    names = archive.namelist()
    assert "hardware_correlation/__init__.py" in names
    assert "hardware_correlation/transforms.py" in names
    assert all(name.startswith("hardware_correlation/") for name in names)
    assert archive.read("hardware_correlation/VERSION").decode().strip() == scripts_version()


def test_the_package_reports_the_version_of_the_zip_it_was_imported_from(tmp_path):
    """The version a job reports comes from the code it imported, as Glue imports --extra-py-files."""
    package = tmp_path / "hardware_correlation.zip"
    package.write_bytes(build_package_zip())
    probe = "from hardware_correlation.version import deployed_version; print(deployed_version())"
    # A fresh interpreter with only the zip on its path: not the source tree the tests import.
    result = subprocess.run(
        [sys.executable, "-c", probe], env={"PYTHONPATH": str(package)}, cwd=tmp_path,
        capture_output=True, text=True, check=True,
    )
    assert result.stdout.strip() == scripts_version()


@pytest.mark.stack
def test_deploy_uploads_once_under_a_version_prefix(stack, aws, scripts_copy):
    from dev.local_aws import policy
    from dev.local_aws.stack import AIRFLOW_ROLE_NAME

    # Deployed as Airflow deploys, with a session of its role: the stack records that role's calls,
    # so the uploads are counted, where S3's LastModified (whole seconds) could not tell two apart.
    arn = aws("iam").get_role(RoleName=AIRFLOW_ROLE_NAME)["Role"]["Arn"]
    credentials = aws("sts").assume_role(RoleArn=arn, RoleSessionName="test-deploy")["Credentials"]
    s3 = aws_client({
        **stack, "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
    }, "s3", aws_session_token=credentials["SessionToken"])
    bucket = stack["ARTIFACTS_BUCKET"]
    # A prefix of this run's own: the stack outlives test runs, and a version already there is not
    # uploaded again.
    prefix = f"test-deploy-{uuid.uuid4().hex}"
    offset = policy.call_log_size()

    def puts() -> Counter:
        return Counter(
            resource.removeprefix(f"arn:aws:s3:::{bucket}/")
            for call in policy.read_calls(offset=offset) if call["action"] == "s3:PutObject"
            for resource in call["resources"] if resource.startswith(f"arn:aws:s3:::{bucket}/{prefix}/")
        )

    try:
        first = deploy(s3, bucket, prefix=prefix, scripts_dir=scripts_copy)
        assert first.etl_script == f"s3://{bucket}/{prefix}/{first.version}/etl_job.py"
        key = f"{prefix}/{first.version}/etl_job.py"
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == (scripts_copy / "etl_job.py").read_bytes()
        listed = {item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")["Contents"]}
        assert listed == {f"{prefix}/{first.version}/{name}" for name in (*ENTRY_POINTS, f"{TRANSFORM_PACKAGE}.zip")}
        assert puts() == Counter(listed)

        again = deploy(s3, bucket, prefix=prefix, scripts_dir=scripts_copy)
        assert again == first
        assert puts() == Counter(listed)

        (scripts_copy / "load_job.py").write_text((scripts_copy / "load_job.py").read_text() + "\n# changed\n")
        changed = deploy(s3, bucket, prefix=prefix, scripts_dir=scripts_copy)
        assert changed.version != first.version
        # The new version is uploaded whole, once; the earlier one stays in place for runs that still use it.
        assert puts() == Counter(listed) + Counter(name.replace(first.version, changed.version) for name in listed)
        assert s3.head_object(Bucket=bucket, Key=key)
    finally:
        own = aws("s3")
        for item in own.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", []):
            own.delete_object(Bucket=bucket, Key=item["Key"])
