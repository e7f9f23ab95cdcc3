"""The processed bucket as the local stack deployed it from the template: its lifecycle rules cover
every run-scoped prefix the DAG writes (tests/support.py derives them from the DAG's arguments)."""

from __future__ import annotations

import pytest
from cfnlint.decode import decode

from dev.local_aws import config
from dev.local_aws.stack import STACK_NAME
from tests.support import check_lifecycle_covers_the_dag

pytestmark = pytest.mark.stack


def test_the_deployed_processed_bucket_expires_run_folders_and_keeps_the_quarantine(stack, aws):
    template, errors = decode(str(config.TEMPLATE))
    assert not errors, errors
    (deployed,) = aws("cloudformation").describe_stacks(StackName=STACK_NAME)["Stacks"]
    # The values the stack was deployed with, else the template's defaults.
    parameters = {name: str(p.get("Default")) for name, p in template["Parameters"].items()}
    parameters.update({p["ParameterKey"]: p["ParameterValue"] for p in deployed.get("Parameters", [])})
    rules = aws("s3").get_bucket_lifecycle_configuration(Bucket=stack["PROCESSED_BUCKET"])["Rules"]
    check_lifecycle_covers_the_dag(
        rules,
        processed_bucket=stack["PROCESSED_BUCKET"],
        run_folder_days=parameters["RunFolderRetentionDays"],
        scratch_days=parameters["LoadScratchRetentionDays"],
    )
