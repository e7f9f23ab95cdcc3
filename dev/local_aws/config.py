"""Paths and fixed values shared by the stack's client side (`stack`) and its server process."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / ".local"
LOGS = LOCAL / "logs"
JARS = LOCAL / "jars"
ENV_FILE = LOCAL / "stack.env"
SERVER_STATE = LOCAL / "stack-server.json"
# The server's last port, kept across restarts so that connections and open shells stay valid.
SERVER_PORT = LOCAL / "stack-server.port"
SERVER_LOG = LOGS / "stack-server.log"
SPARK_CONF_DIR = LOCAL / "spark-conf"
# One working directory per job run: the script, its --extra-py-files and the child's pid file.
GLUE_RUNS = LOCAL / "glue-runs"
LOCK_FILE = LOCAL / "stack.lock"
# The OpenLineage events of local Airflow's tasks and DAG runs (its file transport, in stack.env).
OPENLINEAGE_EVENTS = LOCAL / "openlineage"
LINEAGE_LOG = OPENLINEAGE_EVENTS / "events.jsonl"
# One JSON line per AWS call made with a role's credentials: who, which action, on what (`calls`).
CALL_LOG = LOGS / "aws-calls.jsonl"
# Files that every day run appends to. Each start of the stack's server keeps the last server's as
# `<name>.1<suffix>` and starts them afresh (`stack.rotate_logs`): a year of local backfills, run
# over many sessions, must not fill a laptop's disk.
APPEND_ONLY_LOGS = (SERVER_LOG, CALL_LOG, LINEAGE_LOG)
# The CloudFormation template the stack deploys, and the folder `aws cloudformation package` reads.
TEMPLATE = ROOT / "infrastructure" / "template.yaml"

HOST = "127.0.0.1"
REGION = "us-east-1"
# moto's default account: every resource of the stack lives in it.
ACCOUNT_ID = "123456789012"
# moto accepts any credentials; these make no secret of being dummies.
ACCESS_KEY_ID = "local-stack-access-key"
SECRET_ACCESS_KEY = "local-stack-secret-key"

# A crawl or job run held by a test control goes on by itself after this long, so that a test that
# died holding one does not leave the crawler or the job busy until the server restarts.
HOLD_LIMIT_SECONDS = 600

# Routes under this prefix are the stack's own control API, not AWS's (no bucket name can start with
# an underscore, so they never shadow path-style S3 requests).
CONTROL_PREFIX = "/_stack"


def code_fingerprint() -> str:
    """A hash of the stack's own sources: a server running older code is restarted by `up`."""
    import hashlib

    digest = hashlib.sha256()
    # The template too: a changed template is deployed to a fresh server.
    for path in [*sorted(Path(__file__).parent.glob("*.py")), TEMPLATE]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
