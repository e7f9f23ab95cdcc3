"""The stack's server process: moto's AWS APIs on 127.0.0.1, extended with real crawls and job runs.

Started detached by `python -m dev.local_aws up`; not meant to be run by hand. Once listening it
writes its pid and port to `.local/stack-server.json`. Besides AWS's APIs it serves a small control
API under `/_stack/` (see README.md): a health check and the test controls for Glue job runs and crawls.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
from typing import Any, Callable

from dev.local_aws import config

Handler = Callable[[dict[str, Any], Callable[..., Any]], Any]

# Local days are small (the sample data, test days, at most a few million rows), so a run's time goes
# to starting the JVM and planning and compiling each of its few dozen queries, not to the rows.
# Whole-stage code generation and adaptive re-planning cost more than they save there, and the JVM
# stops at its quick C1 compiler: a sample day's ETL ran 20-30% faster, a 1M-row day as fast (local[2]
# on two cores). Glue keeps its own defaults; the results are the same either way.
SPARK_DEFAULTS = """\
# Written by the local stack's server: Spark for Glue job runs, with S3A pointed at the stack.
spark.master                                    local[2]
spark.ui.enabled                                false
spark.sql.shuffle.partitions                    4
spark.default.parallelism                       4
spark.sql.session.timeZone                      UTC
spark.sql.codegen.wholeStage                    false
spark.sql.adaptive.enabled                      false
spark.driver.extraJavaOptions                   -Duser.timezone=UTC -XX:TieredStopAtLevel=1
spark.hadoop.fs.s3.impl                         org.apache.hadoop.fs.s3a.S3AFileSystem
spark.hadoop.fs.s3a.impl                        org.apache.hadoop.fs.s3a.S3AFileSystem
spark.hadoop.fs.s3a.endpoint                    {endpoint}
spark.hadoop.fs.s3a.endpoint.region             {region}
spark.hadoop.fs.s3a.path.style.access           true
spark.hadoop.fs.s3a.connection.ssl.enabled      false
spark.hadoop.fs.s3a.aws.credentials.provider    org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider
spark.hadoop.fs.s3a.access.key                  {access_key}
spark.hadoop.fs.s3a.secret.key                  {secret_key}
spark.hadoop.fs.s3a.change.detection.mode       none
spark.hadoop.fs.s3a.attempts.maximum            3
spark.hadoop.fs.s3a.retry.limit                 3
spark.hadoop.fs.s3a.connection.establish.timeout 5000
spark.hadoop.fs.s3a.connection.timeout          60000
spark.hadoop.mapreduce.fileoutputcommitter.algorithm.version 2
"""

# Spark's own INFO chatter would drown the script's output in the error stream.
LOG4J2_PROPERTIES = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.nativecode.name = org.apache.hadoop.util.NativeCodeLoader
logger.nativecode.level = error
logger.metrics.name = org.apache.hadoop.metrics2
logger.metrics.level = error
logger.s3abucket.name = org.apache.hadoop.fs.s3a.impl.ConfigurationHelper
logger.s3abucket.level = error
"""

_JOB_CONTROL = re.compile(
    r"^/_stack/glue/jobs/(?P<job>[^/]+)/"
    r"(?P<action>fail-next-run|timeout-scale|hold|release|fail-reads|hold-start-answer|release-start-answer)$"
)
_CRAWLER_CONTROL = re.compile(r"^/_stack/glue/crawlers/(?P<crawler>[^/]+)/(?P<action>fail-next-crawl|hold|release)$")


def write_spark_conf(endpoint_url: str) -> None:
    config.SPARK_CONF_DIR.mkdir(parents=True, exist_ok=True)
    (config.SPARK_CONF_DIR / "spark-defaults.conf").write_text(
        SPARK_DEFAULTS.format(
            endpoint=endpoint_url,
            region=config.REGION,
            access_key=config.ACCESS_KEY_ID,
            secret_key=config.SECRET_ACCESS_KEY,
        )
    )
    (config.SPARK_CONF_DIR / "log4j2.properties").write_text(LOG4J2_PROPERTIES)


class ControlApp:
    """WSGI app: `/_stack/...` is the stack's own API, everything else goes to moto."""

    def __init__(self, moto_app: Handler, runner: Any) -> None:
        self.moto_app = moto_app
        self.runner = runner
        self.code = config.code_fingerprint()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(config.CONTROL_PREFIX + "/"):
            return self.moto_app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else b""
            body = json.loads(raw) if raw else {}
            status, payload = self.route(method, path, body)
        except ValueError as exc:
            status, payload = 400, {"error": f"bad request: {exc}"}
        data = json.dumps(payload).encode()
        start_response(
            f"{status} {'OK' if status < 400 else 'Error'}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
        )
        return [data]

    def route(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path == "/_stack/health" and method == "GET":
            return 200, {"status": "ok", "pid": os.getpid(), "root": str(config.ROOT), "code": self.code}
        match = _JOB_CONTROL.match(path)
        if match and method == "POST":
            job, action = match.group("job"), match.group("action")
            controls = self.runner.controls
            if action == "fail-next-run":
                message = str(body.get("message") or "Failure injected by the local stack.")
                controls.fail_next_run(job, message)
                return 200, {"job": job, "fail_next_run": message}
            if action == "fail-reads":
                from dev.local_aws.glue_api import READ_ACTIONS, READ_ERRORS

                code, actions = body.get("code"), body.get("actions") or []
                if code is not None and code not in READ_ERRORS:
                    raise ValueError(f"code must be one of {', '.join(READ_ERRORS)} or null")
                if not isinstance(actions, list) or not set(actions) <= set(READ_ACTIONS):
                    raise ValueError(f"actions must be a list of {', '.join(READ_ACTIONS)}")
                answered = controls.fail_reads(job, code, tuple(actions))
                return 200, {"job": job, "code": code, "actions": actions, "answered": answered}
            if action == "hold-start-answer":
                controls.hold_start_answer(job)
                return 200, {"job": job, "held": True}
            if action == "release-start-answer":
                return 200, {"job": job, "released": controls.release_start_answer(job)}
            if action == "hold":
                controls.hold_runs(job)
                return 200, {"job": job, "held": True}
            if action == "release":
                run_id = body.get("run_id")
                if run_id is not None and not isinstance(run_id, str):
                    raise ValueError("run_id must be a job run id or null")
                return 200, {"job": job, "released": controls.release_runs(job, run_id)}
            seconds = body.get("seconds_per_minute")
            if seconds is not None and (not isinstance(seconds, (int, float)) or seconds <= 0):
                raise ValueError("seconds_per_minute must be a positive number or null")
            controls.set_seconds_per_timeout_minute(job, seconds)
            return 200, {"job": job, "seconds_per_minute": seconds}
        match = _CRAWLER_CONTROL.match(path)
        if match and method == "POST":
            from dev.local_aws import glue_crawlers

            crawler, action = match.group("crawler"), match.group("action")
            if action in ("hold", "release"):
                state = body.get("state")
                if state not in glue_crawlers.HOLDABLE_STATES:
                    raise ValueError(f"state must be one of {', '.join(glue_crawlers.HOLDABLE_STATES)}")
                if action == "hold":
                    glue_crawlers.CONTROLS.hold(crawler, state)
                else:
                    glue_crawlers.CONTROLS.release(crawler, state)
                return 200, {"crawler": crawler, "state": state, "held": action == "hold"}
            message = str(body.get("message") or "Failure injected by the local stack.")
            times = body.get("times", 1)
            if not isinstance(times, int) or times < 0:
                raise ValueError("times must be a whole number, 0 or more")
            glue_crawlers.CONTROLS.fail_next_crawls(crawler, message, times)
            return 200, {"crawler": crawler, "fail_next_crawl": message, "times": times}
        return 404, {"error": f"no such control route: {method} {path}"}


def moto_dispatcher() -> Handler:
    """moto's server application, with the backend of each Host header looked up once.

    moto looks it up on every request by listing its own package's folder, under a lock that every
    request takes: a quarter of the server's time while a Glue job run reads and writes S3. The
    answer depends on the host alone.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class Dispatcher(DomainDispatcherApplication):
        def __init__(self) -> None:
            super().__init__(create_backend_app)
            self._backends: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            if host not in self._backends:
                self._backends[host] = super().get_backend_for_host(host)
            return self._backends[host]

    return Dispatcher()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port to try first (0: any free port)")
    parser.add_argument(
        "--host",
        default=config.HOST,
        help="address to listen on (default 127.0.0.1; a container needs 0.0.0.0 to publish the port)",
    )
    parser.add_argument("--alerts-port", type=int, default=0, help="the alerts API's port (0: any free port)")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # One line per request would bury what matters in the server's log.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    from dev.local_aws import glue_api
    from dev.local_aws.calls import Recorder
    from dev.local_aws.glue_jobs import JobRunner
    from dev.local_aws.loopback import Loopback

    from dev.local_aws import calls, cloudformation

    app = ControlApp(Recorder(moto_dispatcher(), calls.role_of_key), None)
    try:
        server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    except OSError:
        server = make_server(args.host, 0, app, threaded=True, request_handler=MotoRequestHandler)
    port = server.server_address[1]
    endpoint_url = f"http://{config.HOST}:{port}"

    # Before the job runner: its warm Spark drivers are launched with this configuration, and a
    # restart on the same port would otherwise let them read the file while it is being rewritten.
    write_spark_conf(endpoint_url)
    runner = JobRunner(endpoint_url, Loopback(endpoint_url))
    app.runner = runner
    glue_api.install(runner, runner.loopback)
    cloudformation.install(runner.loopback)
    config.GLUE_RUNS.mkdir(parents=True, exist_ok=True)

    def shutdown(signum: int, _frame: Any) -> None:
        logging.info("signal %s: stopping job runs and the server", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)

    # Building boto3 clients takes most of a second: do it now rather than in the first job run.
    def warm_up() -> None:
        for service in ("s3", "logs", "glue"):
            runner.loopback.client(service, config.REGION)

    threading.Thread(target=warm_up, daemon=True).start()

    # The alerts API (API Gateway + Lambda in AWS) on a port of its own, storing into this stack's S3.
    from dev.local_aws import alerts_api
    from include.settings import load as load_settings

    alerts_server = alerts_api.start(
        args.host,
        args.alerts_port,
        bucket=load_settings().RAW_BUCKET,
        s3_client=runner.loopback.client("s3", config.REGION),
    )
    alerts_api_url = f"http://{config.HOST}:{alerts_server.server_address[1]}{alerts_api.PATH}"

    state = {"pid": os.getpid(), "port": port, "endpoint_url": endpoint_url, "alerts_api_url": alerts_api_url}
    tmp = config.SERVER_STATE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(config.SERVER_STATE)
    logging.info("serving on %s", endpoint_url)
    try:
        server.serve_forever()
    finally:
        runner.stop_all()
        logging.info("stopped")


if __name__ == "__main__":
    main()
