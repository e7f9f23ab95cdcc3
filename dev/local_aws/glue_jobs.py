"""Glue job runs that really run.

StartJobRun fetches the job's ScriptLocation from the emulated S3 and runs it in a child process:
spark-submit for `glueetl` (and `gluestreaming`), python for `pythonshell`. The run's arguments are
the job's DefaultArguments merged with the run's Arguments and the job's NonOverridableArguments, in
Glue's `--key value` form, plus `--JOB_NAME` and `--JOB_RUN_ID`. As in Glue, a `--scriptLocation`
argument overrides the job's ScriptLocation for that run, and a run keeps the job definition it was
started with: an UpdateJob while it starts or runs changes later runs only. The child's stdout and stderr go to
CloudWatch Logs (`/aws-glue/jobs/output` and `/aws-glue/jobs/error`, stream = run id) while it runs.

A run goes STARTING -> RUNNING -> SUCCEEDED, or FAILED (ErrorMessage from the script's error), TIMEOUT
(the run's or the job's Timeout, in minutes, passed) or STOPPED (BatchStopJobRun: the child's process
group is killed).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from moto.glue.exceptions import ConcurrentRunsExceededException, JobRunNotFoundException
from moto.glue.models import FakeJob, FakeJobRun

from dev.local_aws import config, warm_spark
from dev.local_aws.loopback import Loopback, LogWriter, RoleNotAssumable

log = logging.getLogger(__name__)

ACTIVE_STATES = ("STARTING", "RUNNING", "STOPPING")
# Glue's default when neither the job nor the run sets a Timeout.
DEFAULT_TIMEOUT_MINUTES = 2880
LOG_GROUP = "/aws-glue/jobs"
SPARK_COMMANDS = ("glueetl", "gluestreaming")
PYTHON_COMMANDS = ("pythonshell",)
# Arguments Glue itself sets for the script; a caller's values would be ignored by AWS too.
RESERVED_ARGUMENTS = ("--JOB_NAME", "--JOB_RUN_ID")
STOP_GRACE_SECONDS = 5.0
STDERR_TAIL_LINES = 400

# The Spark driver's main file: sends the script's stderr (fd 2, so tracebacks and warnings alike)
# to a file of its own, then runs the script as __main__ with the arguments Glue would give it.
LAUNCHER = """\
import os
import runpy
import sys

stderr_path, script = sys.argv[1], sys.argv[2]
sys.stderr.flush()
descriptor = os.open(stderr_path, os.O_WRONLY | os.O_APPEND)
os.dup2(descriptor, 2)
os.close(descriptor)
sys.stderr = open(2, "w", buffering=1, closefd=False)
sys.argv = [script, *sys.argv[3:]]
runpy.run_path(script, run_name="__main__")
"""

_PYSPARK_HOME = Path(__import__("pyspark").__file__).resolve().parent


class MissingObject(Exception):
    pass


class JobControls:
    """Test controls set through the stack's control API: injected failures, timeout scaling, and runs
    held in STARTING until the test releases them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fail_next: dict[str, str] = {}
        self._seconds_per_minute: dict[str, float] = {}
        self._held_jobs: set[str] = set()
        self._held_runs: dict[str, dict[str, threading.Event]] = {}
        self._read_errors: dict[str, tuple[str, frozenset[str]]] = {}
        self._read_errors_answered: dict[str, int] = {}
        self._held_start_answers: dict[str, threading.Event] = {}

    def fail_next_run(self, job_name: str, message: str) -> None:
        with self._lock:
            self._fail_next[job_name] = message

    def take_failure(self, job_name: str) -> str | None:
        with self._lock:
            return self._fail_next.pop(job_name, None)

    def set_seconds_per_timeout_minute(self, job_name: str, seconds: float | None) -> None:
        with self._lock:
            if seconds is None:
                self._seconds_per_minute.pop(job_name, None)
            else:
                self._seconds_per_minute[job_name] = seconds

    def seconds_per_timeout_minute(self, job_name: str) -> float:
        with self._lock:
            return self._seconds_per_minute.get(job_name, 60.0)

    def hold_runs(self, job_name: str) -> None:
        with self._lock:
            self._held_jobs.add(job_name)

    def release_runs(self, job_name: str, run_id: str | None = None) -> list[str]:
        """Let the held run `run_id` go on, the job staying held; without `run_id`, every held run of
        the job, and the job is no longer held. The ids of the runs let go."""
        with self._lock:
            held = self._held_runs.get(job_name, {})
            if run_id is None:
                self._held_jobs.discard(job_name)
                released = self._held_runs.pop(job_name, {})
            else:
                released = {run_id: held.pop(run_id)} if run_id in held else {}
        for gate in released.values():
            gate.set()
        return list(released)

    def fail_reads(self, job_name: str, code: str | None, actions: tuple[str, ...] = ()) -> int:
        """The job's `actions` (GetJobRun, GetJobRuns) answer the error `code` from now on; None ends
        that. The number of error answers given since the errors were switched on."""
        with self._lock:
            answered = self._read_errors_answered.pop(job_name, 0)
            if code is None:
                self._read_errors.pop(job_name, None)
            else:
                self._read_errors[job_name] = (code, frozenset(actions))
            return answered

    def read_error(self, job_name: str, action: str) -> str | None:
        """The error that `action` of the job answers now, counted as answered."""
        with self._lock:
            code, actions = self._read_errors.get(job_name, (None, frozenset()))
            if code is None or action not in actions:
                return None
            self._read_errors_answered[job_name] = self._read_errors_answered.get(job_name, 0) + 1
            return code

    def hold_start_answer(self, job_name: str) -> None:
        with self._lock:
            self._held_start_answers[job_name] = threading.Event()

    def release_start_answer(self, job_name: str) -> bool:
        """Let the StartJobRun answer held for the job go; whether one was held or waited for."""
        with self._lock:
            gate = self._held_start_answers.pop(job_name, None)
        if gate is not None:
            gate.set()
        return gate is not None

    def wait_before_start_answer(self, job_name: str) -> None:
        """Called once the run exists: a held answer waits for its release (or the hold limit), and the
        hold is for one StartJobRun only."""
        with self._lock:
            gate = self._held_start_answers.get(job_name)
        if gate is not None:
            if not gate.wait(config.HOLD_LIMIT_SECONDS):
                log.warning("the StartJobRun answer of job %s was held for %s s: answering",
                            job_name, config.HOLD_LIMIT_SECONDS)
            with self._lock:
                if self._held_start_answers.get(job_name) is gate:
                    del self._held_start_answers[job_name]

    def gate_of_new_run(self, job_name: str, run_id: str) -> threading.Event | None:
        """Taken when the run is started, so that a release of the runs held so far never lets a
        later run through, however late its thread gets to the gate."""
        with self._lock:
            if job_name not in self._held_jobs:
                return None
            gate = threading.Event()
            self._held_runs.setdefault(job_name, {})[run_id] = gate
            return gate


class JobRunner:
    """Everything a job run needs from the server: its endpoint, loopback clients and controls."""

    def __init__(self, endpoint_url: str, loopback: Loopback) -> None:
        self.endpoint_url = endpoint_url
        self.loopback = loopback
        self.controls = JobControls()
        self._lock = threading.Lock()
        self._runs: dict[str, LocalJobRun] = {}
        self.warm = warm_spark.WarmPool(
            warm_spark.POOL_SIZE,
            _base_env(),
            sorted(str(p) for p in config.JARS.glob("*.jar")),
            config.SPARK_CONF_DIR / "spark-defaults.conf",
            endpoint_url,
        )

    def register(self, run: LocalJobRun) -> None:
        with self._lock:
            self._runs[run.job_run_id] = run

    def active_runs(self) -> list[LocalJobRun]:
        with self._lock:
            return [run for run in self._runs.values() if run.status in ACTIVE_STATES]

    def stop_all(self) -> None:
        self.warm.close()
        for run in self.active_runs():
            run.request_stop()
        deadline = time.monotonic() + STOP_GRACE_SECONDS + 2
        for run in self.active_runs():
            run.wait(max(0.0, deadline - time.monotonic()))


class LocalJobRun(FakeJobRun):
    """A job run backed by a real child process. Replaces moto's timed state machine."""

    def __init__(
        self,
        runner: JobRunner,
        job: FakeJob,
        arguments: dict[str, str],
        timeout: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(job_name=job.name, arguments=arguments, timeout=timeout, **kwargs)
        self._runner = runner
        self._job = job
        # The definition as of StartJobRun: UpdateJob may replace the job's Command at any moment.
        self._command = dict(job.command or {})
        self._lock = threading.RLock()
        self._state = "STARTING"
        self._done = threading.Event()
        self._stop_requested = False
        self._timed_out = False
        self._process: subprocess.Popen[bytes] | None = None
        self._warm: warm_spark.WarmDriver | None = None
        self._requested_at = time.monotonic()
        self._running_since: float | None = None
        self._exited_at: float | None = None
        self._execution_seconds: float | None = None
        self.error_message: str | None = None
        self.region = job.backend.region_name
        self.started_on = datetime.now(timezone.utc)
        self.modified_on = self.started_on
        self.completed_on = None
        self.workdir = config.GLUE_RUNS / self.job_run_id
        self._gate = runner.controls.gate_of_new_run(job.name, self.job_run_id)

    # moto reads `status` and calls `advance()` on every Get*: the state is ours, not a timer's.
    @property
    def status(self) -> str:  # type: ignore[override]
        return self._state

    @status.setter
    def status(self, value: str) -> None:
        self._state = value

    def advance(self) -> None:
        pass

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            result: dict[str, Any] = {
                "Id": self.job_run_id,
                "Attempt": 0,
                "JobName": self.job_name,
                "JobMode": "SCRIPT",
                "StartedOn": self.started_on,
                "LastModifiedOn": self.modified_on,
                "JobRunState": self._state,
                "Arguments": self.arguments or {},
                "PredecessorRuns": [],
                "ExecutionTime": self.execution_time,
                "Timeout": self.timeout,
                "WorkerType": self.worker_type,
                "NumberOfWorkers": self.number_of_workers,
                "MaxCapacity": self.max_capacity,
                "AllocatedCapacity": self.allocated_capacity,
                "LogGroupName": LOG_GROUP,
                "GlueVersion": self._job.glue_version or "5.0",
                "ExecutionClass": self._job.execution_class,
            }
            if self.completed_on is not None:
                result["CompletedOn"] = self.completed_on
            if self.error_message:
                result["ErrorMessage"] = self.error_message
            if self.previous_run_id:
                result["PreviousRunId"] = self.previous_run_id
            if self.security_configuration:
                result["SecurityConfiguration"] = self.security_configuration
            if self.notification_property:
                result["NotificationProperty"] = self.notification_property
            return {key: value for key, value in result.items() if value is not None}

    @property
    def execution_time(self) -> int:
        if self._execution_seconds is not None:
            return int(round(self._execution_seconds))
        if self._running_since is not None:
            return int(time.monotonic() - self._running_since)
        return 0

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._runner.register(self)
        threading.Thread(target=self._execute, name=f"glue-run-{self.job_run_id[:12]}", daemon=True).start()

    def request_stop(self) -> None:
        with self._lock:
            if self._state not in ACTIVE_STATES:
                return
            self._stop_requested = True
            self._set_state("STOPPING")
            process = self._process
        if process is not None:
            threading.Thread(target=_terminate_group, args=(process,), daemon=True).start()

    def _set_state(self, state: str) -> None:
        with self._lock:
            self._state = state
            self.modified_on = datetime.now(timezone.utc)

    def _finish(self, state: str, error_message: str | None = None) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
        with self._lock:
            now = datetime.now(timezone.utc)
            if self._running_since is not None:
                self._execution_seconds = time.monotonic() - self._running_since
            else:
                self._execution_seconds = 0.0
            self.error_message = error_message
            self.completed_on = now
            self._set_state(state)
        self._done.set()
        finished = time.monotonic()
        if self._running_since is not None and self._exited_at is not None:
            # What the stack adds to the script's own time, for the README's figures.
            overhead = (
                f" (stack overhead: {self._running_since - self._requested_at:.3f} s before the process,"
                f" {finished - self._exited_at:.3f} s after it)"
            )
        else:
            overhead = ""
        log.info("job %s run %s: %s%s %s", self.job_name, self.job_run_id, state, overhead, error_message or "")

    def _execute(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a run must end in a final state whatever goes wrong here
            log.exception("job %s run %s crashed in the stack", self.job_name, self.job_run_id)
            if self._process is not None:
                _terminate_group(self._process)
            self._finish("FAILED", f"The local stack could not run the job: {exc}")
        finally:
            self._release_warm_driver()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _release_warm_driver(self) -> None:
        with self._lock:
            driver, self._warm = self._warm, None
        if driver is not None:
            self._runner.warm.done(driver)

    def _wait_while_held(self) -> None:
        if self._gate is None:
            return
        deadline = time.monotonic() + config.HOLD_LIMIT_SECONDS
        # A stop ends the hold: the run then ends STOPPED without starting its script.
        while not self._gate.wait(0.1) and not self._stop_requested:
            if time.monotonic() > deadline:
                log.warning("job %s run %s was held for %s s: going on", self.job_name, self.job_run_id,
                            config.HOLD_LIMIT_SECONDS)
                return

    def _run(self) -> None:
        self._wait_while_held()
        if self._stop_requested:
            self._finish("STOPPED")
            return
        # Glue runs the job, fetches its script and writes its logs with a session of the job's role.
        try:
            self._role = self._runner.loopback.as_role(self._job.role or "", self.region)
        except RoleNotAssumable as exc:
            self._finish("FAILED", str(exc))
            return
        logs = self._role.client("logs", self.region)
        output = LogWriter(logs, f"{LOG_GROUP}/output", self.job_run_id)
        errors = LogWriter(logs, f"{LOG_GROUP}/error", self.job_run_id)

        def fail(message: str) -> None:
            errors.write(message)
            errors.flush()
            self._finish("FAILED", message)

        injected = self._runner.controls.take_failure(self.job_name)
        if injected is not None:
            self._running_since = time.monotonic()
            self._set_state("RUNNING")
            fail(injected)
            return

        command = self._command
        kind = command.get("Name") or "glueetl"
        if kind not in SPARK_COMMANDS + PYTHON_COMMANDS:
            fail(f"Command.Name {kind!r} is not supported; use glueetl, gluestreaming or pythonshell.")
            return
        arguments = dict(self.arguments or {})
        script_location = arguments.get("--scriptLocation") or command.get("ScriptLocation")
        if not script_location:
            fail("The job has no Command.ScriptLocation.")
            return

        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            what = "--scriptLocation" if "--scriptLocation" in arguments else "ScriptLocation"
            script = self._download(script_location, what, self.workdir)
            py_files = [
                self._download(uri, "--extra-py-files", self.workdir / "py-files" / str(i))
                for i, uri in enumerate(_split_uris(arguments.get("--extra-py-files")))
            ]
            jars = [
                self._download(uri, "--extra-jars", self.workdir / "jars" / str(i))
                for i, uri in enumerate(_split_uris(arguments.get("--extra-jars")))
            ]
        except MissingObject as exc:
            fail(str(exc))
            return

        script_args: list[str] = []
        for key, value in arguments.items():
            if key not in RESERVED_ARGUMENTS:
                script_args += [key, str(value)]
        script_args += ["--JOB_NAME", self.job_name, "--JOB_RUN_ID", self.job_run_id]

        if kind in SPARK_COMMANDS:
            argv = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]"]
            all_jars = sorted(str(p) for p in config.JARS.glob("*.jar")) + [str(p) for p in jars]
            if all_jars:
                argv += ["--jars", ",".join(all_jars)]
            if py_files:
                argv += ["--py-files", ",".join(str(p) for p in py_files)]
            # spark-submit merges the Python driver's stderr into its stdout; Glue keeps them apart.
            launcher = self.workdir / "glue_launcher.py"
            launcher.write_text(LAUNCHER)
            python_stderr = self.workdir / "python-stderr.log"
            python_stderr.touch()
            argv += [str(launcher), str(python_stderr), str(script), *script_args]
        else:
            argv = [sys.executable, "-u", str(script), *script_args]
        env = self._child_env(py_files)
        warm = None
        if kind in SPARK_COMMANDS:
            warm = self._warm_driver(arguments, env, script, py_files, script_args, python_stderr)

        with self._lock:
            if self._stop_requested:
                if warm is not None:
                    warm[0].kill()
                self._finish("STOPPED")
                return
            if warm is not None:
                driver, spec = warm
                try:
                    driver.send(spec)
                    self._warm = driver
                except OSError as exc:
                    log.warning("job %s run %s: warm Spark driver %s gone (%s): starting cold",
                                self.job_name, self.job_run_id, driver.pid, exc)
                    driver.kill()
                    self._runner.warm.done(driver)
            if self._warm is not None:
                self._process = self._warm.process
            else:
                self._process = subprocess.Popen(
                    argv,
                    cwd=self.workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
            (self.workdir / "pid").write_text(str(self._process.pid))
            self._running_since = time.monotonic()
            self._set_state("RUNNING")
        process = self._process

        stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        python_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        exited = threading.Event()
        readers = [
            threading.Thread(target=_pump, args=(process.stdout, output, None), daemon=True),
            threading.Thread(target=_pump, args=(process.stderr, errors, stderr_tail), daemon=True),
        ]
        if kind in SPARK_COMMANDS:
            readers.append(
                threading.Thread(
                    target=_follow, args=(self.workdir / "python-stderr.log", errors, python_tail, exited), daemon=True
                )
            )
        for reader in readers:
            reader.start()
        flusher_stop = threading.Event()
        threading.Thread(target=_flush_periodically, args=(flusher_stop, output, errors), daemon=True).start()

        limit_seconds = self.timeout * self._runner.controls.seconds_per_timeout_minute(self.job_name)
        remaining = limit_seconds - (datetime.now(timezone.utc) - self.started_on).total_seconds()
        try:
            returncode = process.wait(timeout=max(0.0, remaining))
        except subprocess.TimeoutExpired:
            self._timed_out = True
            _terminate_group(process)
            returncode = process.wait()
        self._exited_at = time.monotonic()
        # The script may leave children (Spark's python workers) holding the pipes open.
        _kill_group(process.pid, signal.SIGKILL)
        self._release_warm_driver()
        exited.set()
        for reader in readers:
            reader.join(timeout=5)
        flusher_stop.set()
        output.flush()
        errors.flush()

        if self._timed_out:
            self._finish("TIMEOUT", f"Job run exceeded its timeout of {self.timeout} minutes and was stopped.")
        elif self._stop_requested:
            self._finish("STOPPED")
        elif returncode == 0:
            self._finish("SUCCEEDED")
        else:
            self._finish("FAILED", error_message_from_stderr(list(python_tail) or list(stderr_tail), returncode))

    def _warm_driver(
        self,
        arguments: dict[str, str],
        env: dict[str, str],
        script: Path,
        py_files: list[Path],
        script_args: list[str],
        python_stderr: Path,
    ) -> tuple[warm_spark.WarmDriver, dict[str, Any]] | None:
        """A warm driver and the spec of this run for it, or None: the run starts cold."""
        pool = self._runner.warm
        conf = warm_spark.read_spark_defaults(Path(env["SPARK_CONF_DIR"]) / "spark-defaults.conf")
        if pool.size <= 0:
            reason: str | None = "warm starts are off"
        else:
            reason = warm_spark.cold_start_reason(arguments, conf, pool.launched)
        driver = pool.take() if reason is None else None
        if driver is None:
            log.info("job %s run %s starts cold: %s", self.job_name, self.job_run_id, reason or "no warm Spark driver")
            return None
        # What spark-submit would set: the application's name, its py-files (which PySpark ships to
        # the Python workers), and the workers' environment, inherited from the JVM in a cold run.
        conf["spark.app.name"] = script.name
        if py_files:
            conf["spark.submit.pyFiles"] = conf["spark.files"] = ",".join(str(p) for p in py_files)
        launch_env = pool.launch_env
        conf.update({f"spark.executorEnv.{k}": v for k, v in env.items() if launch_env.get(k) != v})
        spec = {
            "cwd": str(self.workdir),
            "script": str(script),
            "argv": script_args,
            "env": env,
            "conf": conf,
            "stderr": str(python_stderr),
            # spark-submit puts a .py file's folder on the driver's path, a zip itself.
            "python_path": [str(p.parent if p.suffix == ".py" else p) for p in py_files],
        }
        log.info("job %s run %s starts warm: Spark driver %s", self.job_name, self.job_run_id, driver.pid)
        return driver, spec

    def _download(self, uri: str, what: str, directory: Path) -> Path:
        match = re.fullmatch(r"s3a?://([^/]+)/(.*[^/])", uri.strip())
        if not match:
            raise MissingObject(f"{what} {uri!r} is not an s3:// URI of an object.")
        bucket, key = match.groups()
        s3 = self._role.client("s3", self.region)
        directory.mkdir(parents=True, exist_ok=True)
        # Keep the object's file name: Python imports a shipped .py file by it.
        target = directory / Path(key).name
        try:
            s3.download_file(bucket, key, str(target))
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NoSuchBucket", "403"):
                raise MissingObject(f"{what} {uri} does not exist in S3.") from exc
            raise
        return target

    def _spark_conf_dir(self, credentials: dict[str, str]) -> Path:
        """The server's Spark configuration with S3A signing as the role's session, for this run.

        Without the session token: the stack knows the caller by its access key alone, and Hadoop
        3.3.4's TemporaryAWSCredentialsProvider initialises lazily and races when Spark checks several
        paths at once ("has no credentials"); the simple provider has no such state.
        """
        directory = self.workdir / "spark-conf"
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copy(config.SPARK_CONF_DIR / "log4j2.properties", directory / "log4j2.properties")
        settings = {
            "spark.hadoop.fs.s3a.access.key": credentials["aws_access_key_id"],
            "spark.hadoop.fs.s3a.secret.key": credentials["aws_secret_access_key"],
            # Spark's scratch (blocks, and the files and jars each context copies, some 270 MB) in
            # the run's folder, which goes when the run ends: a stopped or killed run leaves
            # nothing behind in /tmp.
            "spark.local.dir": str(self.workdir / "spark-local"),
        }
        lines = [
            line
            for line in (config.SPARK_CONF_DIR / "spark-defaults.conf").read_text().splitlines()
            if line.split(maxsplit=1)[:1] not in ([key] for key in settings)
        ]
        lines += [f"{key} {value}" for key, value in settings.items()]
        target = directory / "spark-defaults.conf"
        target.touch(mode=0o600)
        target.write_text("\n".join(lines) + "\n")
        return directory

    def _child_env(self, py_files: list[Path]) -> dict[str, str]:
        credentials = self._role.credentials
        env = _base_env()
        env.update(
            {
                "AWS_ENDPOINT_URL": self._runner.endpoint_url,
                "AWS_ACCESS_KEY_ID": credentials["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": credentials["aws_secret_access_key"],
                "AWS_SESSION_TOKEN": credentials["aws_session_token"],
                "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region,
                "SPARK_CONF_DIR": str(self._spark_conf_dir(credentials)),
            }
        )
        if py_files:
            env["PYTHONPATH"] = os.pathsep.join(str(p) for p in py_files)
        return env


def _base_env() -> dict[str, str]:
    """A run's environment without the run: what a warm driver's JVM is launched with.

    Built from scratch so that nothing of the caller's environment (Airflow settings, the repository
    on PYTHONPATH) leaks into the script: it sees what a Glue worker would.
    """
    inherited = ("PATH", "HOME", "LANG", "LC_ALL", "JAVA_HOME", "TMPDIR", "USER")
    env = {key: os.environ[key] for key in inherited if key in os.environ}
    env.update(
        {
            "TZ": "UTC",
            "PYTHONUNBUFFERED": "1",
            "SPARK_LOCAL_IP": config.HOST,
            "SPARK_HOME": str(_PYSPARK_HOME),
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
        }
    )
    return env


def start_job_run(runner: JobRunner, job: FakeJob, **kwargs: Any) -> str:
    """Replacement for moto's FakeJob.start_job_run: same checks, then a real run."""
    arguments = dict(job.default_arguments or {})
    arguments.update(kwargs.get("arguments") or {})
    arguments.update(job.non_overridable_arguments or {})
    with _start_lock:
        active = [run for run in job.job_runs if run.status in ACTIVE_STATES]
        limit = int((job.execution_property or {}).get("MaxConcurrentRuns", 1) or 1)
        if len(active) >= limit:
            raise ConcurrentRunsExceededException(
                f"Concurrent runs exceeded for {job.name}: {len(active)} of {limit} allowed runs are active."
            )
        run = LocalJobRun(
            runner,
            job,
            arguments=arguments,
            timeout=kwargs.get("timeout") or job.timeout or DEFAULT_TIMEOUT_MINUTES,
            job_run_id=kwargs.get("previous_run_id"),
            allocated_capacity=kwargs.get("allocated_capacity") or job.allocated_capacity,
            max_capacity=kwargs.get("max_capacity") or job.max_capacity,
            worker_type=kwargs.get("worker_type") or job.worker_type,
            security_configuration=kwargs.get("security_configuration") or job.security_configuration,
            number_of_workers=kwargs.get("number_of_workers") or job.number_of_workers,
            notification_property=kwargs.get("notification_property") or job.notification_property,
        )
        job.job_runs.append(run)
    run.start()
    runner.controls.wait_before_start_answer(job.name)
    return run.job_run_id


_start_lock = threading.Lock()


def batch_stop_job_run(job: FakeJob, run_ids: list[str]) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    stopped: list[dict[str, str]] = []
    errors: list[dict[str, Any]] = []
    runs = {run.job_run_id: run for run in job.job_runs}
    for run_id in run_ids:
        run = runs.get(run_id)
        if run is None:
            error = JobRunNotFoundException(run_id)
            detail = {"ErrorCode": "EntityNotFoundException", "ErrorMessage": error.message}
        elif run.status not in ACTIVE_STATES:
            detail = {
                "ErrorCode": "InvalidInputException",
                "ErrorMessage": f"Job run {run_id} is not running (state {run.status}).",
            }
        else:
            if isinstance(run, LocalJobRun):
                run.request_stop()
            else:
                run.status = "STOPPED"
            stopped.append({"JobName": job.name, "JobRunId": run_id})
            continue
        errors.append({"JobName": job.name, "JobRunId": run_id, "ErrorDetail": detail})
    return stopped, errors


_TRACEBACK_START = "Traceback (most recent call last):"
# Spark and log4j lines: "25/10/01 10:00:00 WARN Foo: ..." or "[Stage 1:>   (0 + 2) / 2]".
_LOG_LINE = re.compile(r"^(\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}|\[Stage \d+)")


def error_message_from_stderr(lines: list[str], returncode: int) -> str:
    """The script's error as Glue reports it: the exception line of the last Python traceback."""
    start = max((i for i, line in enumerate(lines) if line.startswith(_TRACEBACK_START)), default=None)
    if start is not None:
        message_lines: list[str] = []
        for line in lines[start + 1 :]:
            if not message_lines:
                if line.startswith((" ", "\t")) or not line.strip():
                    continue
                message_lines.append(line.rstrip())
            elif line.strip() and not line.startswith(" ") and not _LOG_LINE.match(line):
                # Exception messages may span lines until the next log line or blank line.
                message_lines.append(line.rstrip())
            else:
                break
        if message_lines:
            return _clip("\n".join(message_lines))
    for line in reversed(lines):
        if line.strip() and not _LOG_LINE.match(line):
            return _clip(f"{line.strip()} (exit code {returncode})")
    return f"The script exited with code {returncode} and wrote no error."


def _clip(message: str, limit: int = 2000) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


def _split_uris(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _pump(stream: Any, writer: LogWriter, tail: deque[str] | None) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        writer.write(line)
        if tail is not None:
            tail.append(line)
    stream.close()


def _follow(path: Path, writer: LogWriter, tail: deque[str], exited: threading.Event) -> None:
    """Send the lines appended to `path` until the process has exited and the file is drained."""
    pending = b""
    with open(path, "rb") as handle:
        while True:
            finished = exited.is_set()
            chunk = handle.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    line = raw.decode("utf-8", errors="replace")
                    writer.write(line)
                    tail.append(line)
            elif finished:
                break
            else:
                time.sleep(0.1)
    if pending:
        line = pending.decode("utf-8", errors="replace")
        writer.write(line)
        tail.append(line)


def _flush_periodically(stop: threading.Event, *writers: LogWriter) -> None:
    while not stop.wait(1.0):
        for writer in writers:
            try:
                writer.flush()
            except Exception:
                log.exception("could not send logs to %s", writer.group)


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _terminate_group(process: subprocess.Popen[bytes]) -> None:
    _kill_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid, signal.SIGKILL)
