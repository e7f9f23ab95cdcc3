"""Versioned deployment of `glue_scripts/` to S3.

The version is a hash of the scripts' contents, so every distinct set of scripts gets its own
immutable prefix: a run (or a backfill) keeps the code it deployed even when another run deploys a
newer version meanwhile, and redeploying an unchanged tree uploads nothing.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

from airflow.sdk import task

GLUE_SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "glue_scripts"
TRANSFORM_PACKAGE = "hardware_correlation"
ENTRY_POINTS = ("etl_job.py", "load_job.py")
# Read back by glue_scripts/hardware_correlation/version.py.
VERSION_FILE = "VERSION"
# A fixed timestamp makes the zip's bytes depend on the contents only.
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class GlueArtifacts:
    version: str
    etl_script: str
    load_script: str
    extra_py_files: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _package_files(scripts_dir: Path) -> list[Path]:
    package_dir = scripts_dir / TRANSFORM_PACKAGE
    return sorted(p for p in package_dir.rglob("*.py") if "__pycache__" not in p.parts)


def build_package_zip(scripts_dir: Path = GLUE_SCRIPTS_DIR) -> bytes:
    """The transform package as a zip for `--extra-py-files`, byte-identical for identical sources.

    It also holds `hardware_correlation/VERSION`, the scripts version, which the jobs report as the
    version of the code that ran (hardware_correlation/version.py).
    """
    members = {path.relative_to(scripts_dir).as_posix(): path.read_bytes() for path in _package_files(scripts_dir)}
    members[f"{TRANSFORM_PACKAGE}/{VERSION_FILE}"] = scripts_version(scripts_dir).encode("ascii") + b"\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, body in members.items():
            info = zipfile.ZipInfo(name, _ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, body)
    return buffer.getvalue()


def scripts_version(scripts_dir: Path = GLUE_SCRIPTS_DIR) -> str:
    """A short content hash of the entry points and the transform package."""
    digest = hashlib.sha256()
    files = [scripts_dir / name for name in ENTRY_POINTS] + _package_files(scripts_dir)
    for path in files:
        digest.update(path.relative_to(scripts_dir).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _exists(s3_client, bucket: str, key: str) -> bool:
    listing = s3_client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    return any(obj["Key"] == key for obj in listing.get("Contents", []))


def deploy(s3_client, bucket: str, prefix: str = "glue-scripts", scripts_dir: Path = GLUE_SCRIPTS_DIR) -> GlueArtifacts:
    """Upload the scripts under `s3://bucket/prefix/<version>/`, skipping objects already there."""
    version = scripts_version(scripts_dir)
    base = f"{prefix}/{version}"
    objects = {f"{base}/{name}": (scripts_dir / name).read_bytes() for name in ENTRY_POINTS}
    objects[f"{base}/{TRANSFORM_PACKAGE}.zip"] = build_package_zip(scripts_dir)
    for key, body in objects.items():
        if not _exists(s3_client, bucket, key):
            s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    return GlueArtifacts(
        version=version,
        etl_script=f"s3://{bucket}/{base}/etl_job.py",
        load_script=f"s3://{bucket}/{base}/load_job.py",
        extra_py_files=f"s3://{bucket}/{base}/{TRANSFORM_PACKAGE}.zip",
    )


@task(execution_timeout=timedelta(minutes=10))
def deploy_glue_scripts() -> dict[str, str]:
    """This DAG run's scripts version in the artifacts bucket: its script and package locations."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from include import settings as pipeline_settings

    settings = pipeline_settings.load()
    s3 = S3Hook(aws_conn_id=settings.AWS_CONN_ID).get_conn()
    return deploy(s3, settings.ARTIFACTS_BUCKET).as_dict()
