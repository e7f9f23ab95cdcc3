"""IAM's decision for the calls the stack recorded (`calls.py`), from the policies a role holds.

A role's policies are read back from the stack's IAM, where the CloudFormation template put them
(inline policies and attached managed policies). The evaluation is IAM's for identity policies: an
explicit Deny wins, otherwise some Allow statement must match the action (wildcards, any case), every
resource the call names (wildcards) and all its conditions. Conditions support the operators the
template uses (StringEquals, StringLike, their ForAllValues/ForAnyValue forms, Bool); a condition
key the call does not carry fails the condition, as in IAM. NotAction/NotResource are refused.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from dev.local_aws import config


def _statements(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, str):
        try:
            document = json.loads(unquote(document))
        except ValueError:
            # moto's CloudFormation stores a role's inline policy as a dict, and GetRolePolicy then
            # answers with its Python repr instead of JSON.
            document = ast.literal_eval(document)
    statements = document["Statement"]
    return statements if isinstance(statements, list) else [statements]


def role_statements(iam: Any, role_arn: str) -> list[dict[str, Any]]:
    """Every statement of the role's inline and attached managed policies."""
    name = role_arn.rsplit("/", 1)[-1]
    statements = []
    for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        statements += _statements(iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"])
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)["PolicyVersion"]
        statements += _statements(document["Document"])
    return statements


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _glob(pattern: str, value: str, ignore_case: bool = False) -> bool:
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    # IAM's wildcards are * and ? only: fnmatch's [...] sets must match literally.
    return re.fullmatch(fnmatch.translate(pattern.replace("[", "[[]")), value) is not None


def _condition_holds(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    for operator, tests in condition.items():
        qualifier, _, base = operator.rpartition(":")
        for key, expected in tests.items():
            if key not in context:
                return False
            actual = context[key]
            values = actual if isinstance(actual, list) else [actual]
            if base not in _OPERATORS:
                raise ValueError(f"condition operator {operator} is not supported by this evaluator")
            wanted = [str(e) for e in _listed(expected)]
            matches = [_OPERATORS[base](str(value), wanted) for value in values]
            # Single-valued keys and ForAllValues: every value must match; ForAnyValue: one.
            if not (any(matches) if qualifier == "ForAnyValue" else all(matches)):
                return False
    return True


_OPERATORS = {
    "StringEquals": lambda value, wanted: value in wanted,
    "StringLike": lambda value, wanted: any(_glob(pattern, value) for pattern in wanted),
    "Bool": lambda value, wanted: value.lower() in [w.lower() for w in wanted],
}


def _statement_applies(statement: dict[str, Any], action: str, resource: str, context: dict[str, Any]) -> bool:
    if "NotAction" in statement or "NotResource" in statement:
        raise ValueError(f"NotAction/NotResource are not supported by this evaluator: {statement}")
    if not any(_glob(pattern, action, ignore_case=True) for pattern in _listed(statement["Action"])):
        return False
    if not any(_glob(pattern, resource) for pattern in _listed(statement["Resource"])):
        return False
    return _condition_holds(statement.get("Condition") or {}, context)


def allowed(statements: list[dict[str, Any]], action: str, resource: str, context: dict[str, Any]) -> bool:
    applying = [s for s in statements if _statement_applies(s, action, resource, context)]
    if any(s["Effect"] == "Deny" for s in applying):
        return False
    return any(s["Effect"] == "Allow" for s in applying)


def read_calls(path: Path = config.CALL_LOG, offset: int = 0) -> list[dict[str, Any]]:
    """The calls recorded from byte `offset` of the call log on."""
    if not path.exists():
        return []
    with open(path, "rb") as handle:
        handle.seek(offset)
        return [json.loads(line) for line in handle.read().decode().splitlines() if line.strip()]


def call_log_size(path: Path = config.CALL_LOG) -> int:
    return path.stat().st_size if path.exists() else 0


def denied(calls: Iterable[dict[str, Any]], iam: Any) -> list[str]:
    """Each recorded (role, action, resource) that the role's policies do not allow, once."""
    policies: dict[str, list[dict[str, Any]]] = {}
    refusals: dict[tuple[str, str, str], None] = {}
    for call in calls:
        role = call["role"]
        if role not in policies:
            policies[role] = role_statements(iam, role)
        for resource in call["resources"]:
            if not allowed(policies[role], call["action"], resource, call.get("context") or {}):
                refusals[(role.rsplit("/", 1)[-1], call["action"], resource)] = None
    return [f"{role}: {action} on {resource}" for role, action, resource in refusals]
