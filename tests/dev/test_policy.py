"""The IAM evaluation the least-privilege test relies on (dev/local_aws/policy.py)."""

from __future__ import annotations

import pytest

from dev.local_aws import policy

LIST_RAW = {
    "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::raw",
    "Condition": {"StringLike": {"s3:prefix": ["customers/*", "hardware_logs/*"]}},
}
READ_RAW = {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::raw/customers/*"]}


def test_action_matches_in_any_case_and_resource_by_wildcard():
    assert policy.allowed([READ_RAW], "S3:getobject", "arn:aws:s3:::raw/customers/customers.csv", {})
    assert not policy.allowed([READ_RAW], "s3:GetObject", "arn:aws:s3:::raw/sales/sales.csv", {})
    assert not policy.allowed([READ_RAW], "s3:PutObject", "arn:aws:s3:::raw/customers/customers.csv", {})


def test_a_condition_holds_only_for_a_matching_value_and_not_without_its_key():
    assert policy.allowed([LIST_RAW], "s3:ListBucket", "arn:aws:s3:::raw", {"s3:prefix": "hardware_logs/dt=1/"})
    assert not policy.allowed([LIST_RAW], "s3:ListBucket", "arn:aws:s3:::raw", {"s3:prefix": "sales/"})
    assert not policy.allowed([LIST_RAW], "s3:ListBucket", "arn:aws:s3:::raw", {})


def test_explicit_deny_wins_and_nothing_is_allowed_by_default():
    deny = {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}
    assert not policy.allowed([READ_RAW, deny], "s3:GetObject", "arn:aws:s3:::raw/customers/c.csv", {})
    assert not policy.allowed([], "s3:GetObject", "arn:aws:s3:::raw/customers/c.csv", {})


def test_brackets_in_a_resource_are_literal():
    statement = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::raw/[a]/*"}
    assert policy.allowed([statement], "s3:GetObject", "arn:aws:s3:::raw/[a]/x", {})
    assert not policy.allowed([statement], "s3:GetObject", "arn:aws:s3:::raw/a/x", {})


def test_unsupported_elements_are_refused_rather_than_misread():
    with pytest.raises(ValueError):
        policy.allowed([{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}], "s3:GetObject", "x", {})
    with pytest.raises(ValueError):
        policy.allowed([{**READ_RAW, "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}],
                       "s3:GetObject", "arn:aws:s3:::raw/customers/c", {"aws:SourceIp": "10.0.0.1"})


TOPIC = "arn:aws:sns:us-east-1:123456789012:hardware-correlation-failures"


@pytest.mark.parametrize("parameter", ["TopicArn", "TargetArn"])
def test_a_publish_is_recorded_on_its_topic_and_allowed_there_only(parameter):
    """The provider's notifier names the topic as TargetArn; IAM checks sns:Publish on that ARN."""
    from urllib.parse import urlencode

    from dev.local_aws import calls

    body = urlencode({"Action": "Publish", parameter: TOPIC, "Message": "day failed"}).encode()
    (call,) = calls.api_calls("sns", {}, body)
    assert (call["action"], call["resources"]) == ("sns:Publish", [TOPIC])
    publish = {"Effect": "Allow", "Action": "sns:Publish", "Resource": TOPIC}
    assert policy.allowed([publish], call["action"], call["resources"][0], {})
    assert not policy.allowed([publish], "sns:Publish", TOPIC.replace("failures", "other"), {})
    assert not policy.allowed([publish], "sns:Subscribe", TOPIC, {})
