"""The stack as a service of docker-compose.yaml: serve, provision, then keep serving.

`python -m dev.local_aws.container` starts the server on all addresses (port 4566, the alerts API on
4567), deploys and provisions what `make up` does (stack.provision: the template's buckets, roles,
Glue database and Connection, the warehouse secret), with the warehouse at WAREHOUSE_DSN (the
compose file's `postgres` service), and marks itself ready for the health check. Glue job runs are
spark-submit children of this container, so the Glue Connection's JDBC URL names the warehouse by its
compose host name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from dev.local_aws import config, stack

PORT = 4566
ALERTS_PORT = 4567
# The health check's file: present once provisioning finished (see docker-compose.yaml).
READY = config.LOCAL / "provisioned"


def _say(message: str) -> None:
    print(f"stack: {message}", flush=True)


def main() -> int:
    READY.unlink(missing_ok=True)
    config.LOGS.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "dev.local_aws.server", "--host", "0.0.0.0", "--port", str(PORT),  # noqa: S104
         "--alerts-port", str(ALERTS_PORT)],
        env={**os.environ, "PYTHONPATH": str(config.ROOT)},
    )
    # docker stop sends SIGTERM to this process (PID 1 under tini): pass it on to the server.
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())

    try:
        endpoint = stack.wait_for_server(server)
    except stack.StackError as error:
        _say(str(error))
        server.kill()
        return 1
    _say(f"serving on 0.0.0.0:{PORT}, alerts API on 0.0.0.0:{ALERTS_PORT}")

    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": config.ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": config.SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": config.REGION,
        "WAREHOUSE_DSN": os.environ["WAREHOUSE_DSN"],
    }
    for attempt in range(30):
        try:
            stack.provision(env)
            break
        except Exception as exc:  # the warehouse may still be starting
            if attempt == 29 or server.poll() is not None:
                _say(f"provisioning failed: {stack.first_line(exc)}")
                server.terminate()
                return 1
            time.sleep(2)
    READY.touch()
    _say("provisioned: buckets, roles, Glue database and Connection, warehouse secret")
    return server.wait()


if __name__ == "__main__":
    sys.exit(main())
