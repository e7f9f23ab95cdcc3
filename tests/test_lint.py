"""Lint and supply chain: ruff over the repository, pip-audit over requirements.txt."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# What became of the vulnerability check, one line: `.ci/run` prints it when the check was skipped,
# which pytest's summary would otherwise show as one "s" among hundreds of passes.
AUDIT_OUTCOME = ROOT / ".local" / "pip-audit-outcome.txt"

# Known vulnerabilities of a pinned package that do not apply here, by id, each with the reason.
# Empty: a finding fails the test until the pin is raised or the reason is written down here.
NOT_APPLICABLE: dict[str, str] = {}


def test_ruff_finds_nothing():
    """The rule sets and each justified exception are in pyproject.toml ([tool.ruff])."""
    result = subprocess.run(
        [str(BIN / "ruff"), "check", "--no-cache", "--output-format", "concise", "."],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _audit(service: str) -> tuple[dict | None, str]:
    """pip-audit's JSON report from `service`, or None and why the service could not answer."""
    result = subprocess.run(
        [str(BIN / "pip-audit"), "--requirement", "requirements.txt", "--no-deps", "--disable-pip",
         "--vulnerability-service", service, "--format", "json", "--progress-spinner", "off"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    unreachable = ("ConnectionError", "NameResolutionError", "Max retries exceeded", "Failed to resolve", "timed out")
    if result.returncode != 0 and any(sign in result.stderr for sign in unreachable):
        return None, f"{service}: {result.stderr.strip().splitlines()[-1]}"
    # A vulnerability found also exits 1, with the report on stdout.
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"pip-audit ({service}) failed:\n{result.stdout}\n{result.stderr}")
    dependencies = report["dependencies"]
    skipped = [dependency for dependency in dependencies if dependency.get("skip_reason")]
    if dependencies and len(skipped) == len(dependencies):
        # The service answered nothing for any package (a registry mirror without PyPI's JSON API).
        return None, f"{service}: no package could be audited ({skipped[0]['skip_reason']})"
    return report, ""


def _note_outcome(text: str) -> None:
    AUDIT_OUTCOME.parent.mkdir(parents=True, exist_ok=True)
    AUDIT_OUTCOME.write_text(" ".join(text.split()) + "\n")


@pytest.mark.network
def test_no_pinned_requirement_has_a_known_vulnerability():
    AUDIT_OUTCOME.unlink(missing_ok=True)
    reasons = []
    for service in ("osv", "pypi"):
        report, reason = _audit(service)
        if report is not None:
            break
        reasons.append(reason)
    else:
        reason = "no vulnerability service is reachable from here: " + "; ".join(reasons)
        _note_outcome("skipped: " + reason)
        pytest.skip(reason)
    _note_outcome(f"audited with {service}")

    skipped = [d["name"] for d in report["dependencies"] if d.get("skip_reason")]
    assert not skipped, f"not audited: {skipped}"
    found = {
        (dependency["name"], dependency["version"], vulnerability["id"], tuple(vulnerability.get("aliases", ())))
        for dependency in report["dependencies"]
        for vulnerability in dependency.get("vulns", [])
    }
    applicable = [
        finding for finding in found
        if finding[2] not in NOT_APPLICABLE and not set(finding[3]) & set(NOT_APPLICABLE)
    ]
    assert not applicable, f"known vulnerabilities in requirements.txt: {sorted(applicable)}"
