"""Warm Spark drivers for Glue job runs: a JVM, its py4j gateway and PySpark started ahead of need.

A cold `spark-submit` spends 10-15 s starting a JVM, importing PySpark and loading and compiling
Spark SQL's classes before a script's first query returns. The pool keeps `POOL_SIZE` driver
processes that have done all of that (the gateway JVM with the stack's jars, a throwaway local
SparkContext that ran a few queries, then stopped; Hadoop's S3 client loaded) and wait for a run spec
on stdin.

One process serves exactly one run, then exits. The run sends its spec (working directory, script,
py-files, argv, environment, Spark conf); the process takes the run's environment, puts the run's
conf where spark-submit puts spark-defaults.conf (the JVM's system properties, which SparkConf
reads), and runs the script with runpy as __main__: the script's own SparkSession.builder creates
the run's SparkContext, as under spark-submit. Nothing of the throwaway context is left: it ran on
local data with no credentials, its Python workers ended with it and Hadoop's FileSystem cache is
emptied.

Warm starts are on by default; `LOCAL_AWS_WARM_SPARK=0` in the environment of `make up` (after
`make down`) switches them off, a number sets how many drivers are kept ready.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dev.local_aws import config

log = logging.getLogger(__name__)

# Drivers kept ready: a pipeline day runs two Spark jobs one after the other.
POOL_SIZE = int(os.environ.get("LOCAL_AWS_WARM_SPARK", "2") or 0)
# A run that finds no driver ready waits this long for one being started, then starts cold.
WAIT_FOR_STARTING_SECONDS = 90.0
# A ready driver is replaced only once no warm run has ended for this long: a day's second job
# starts a few seconds after its first, and should not share the CPU with a warm-up.
REFILL_DELAY_SECONDS = 15.0
# After this many drivers in a row die before they are ready, the pool gives up (runs start cold).
MAX_FAILED_STARTS = 3
WARM_DIR = config.LOCAL / "warm-spark"
# Class-data-sharing archives of the drivers' JVM (Spark's, Scala's and Hadoop's classes, parsed and
# verified once): a driver launched with one spends about a third less CPU on starting and warming
# up (10.5 to 6.7 CPU-s for a warm-up's queries, 8.5 to 5.4 s wall). One per launch fingerprint
# (the JVM, the jars, the launch settings); kept across stack restarts.
CLASS_ARCHIVES = config.LOCAL / "spark-class-archives"
# Making an archive: a driver's warm-up, then the JVM writes the classes it loaded as it exits.
ARCHIVE_SECONDS = 180.0
# `LOCAL_AWS_CLASS_ARCHIVE=0`: make none (where `.local/` does not outlive the stack, as in a container,
# making one costs more than it saves); one already there is still used.
MAKE_CLASS_ARCHIVE = os.environ.get("LOCAL_AWS_CLASS_ARCHIVE", "1").strip() != "0"
# Run arguments that only a JVM launch can honour.
COLD_ARGUMENTS = ("--extra-jars", "--user-jars-first")
# Spark settings that take effect only when the driver's JVM is launched.
JVM_LAUNCH_KEYS = (
    "spark.driver.",
    "spark.jars",
    "spark.executor.extraClassPath",
    "spark.executor.extraJavaOptions",
    "spark.executor.extraLibraryPath",
)

DRIVER = r'''
import json
import os
import runpy
import shutil
import sys
import tempfile

ready_fd = int(sys.argv[1])

# Libraries a Glue script imports, imported ahead of the run (the script's own modules are not).
import boto3  # noqa: F401
import botocore.session  # noqa: F401
from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

SparkContext._ensure_initialized()
jvm = SparkContext._jvm
system = jvm.java.lang.System
# The shell's progress bar, which spark-submit turns on for pyspark-shell only, not for a script.
system.clearProperty("spark.ui.showConsoleProgress")
launched = {key: system.getProperty(key) for key in system.getProperties().stringPropertyNames()
            if key.startswith("spark.")}


def warm_up():
    """Queries like a Glue script's, on local data, so that Spark SQL's classes are loaded and compiled."""
    scratch = tempfile.mkdtemp(prefix="warm-up-", dir=os.getcwd())
    try:
        with open(sys.argv[2]) as handle:
            settings = json.load(handle)
        # Spark's scratch in the throwaway folder too: nothing of the warm-up outlives it.
        conf = SparkConf().setAll(settings.items()).set("spark.local.dir", scratch).setAppName("warm-up")
        spark = SparkSession(SparkContext(conf=conf))
        with open(os.path.join(scratch, "in.csv"), "w") as handle:
            handle.write("id,device,ts,value\n1,a,2025-10-01T01:00:00Z,1.5\n2,b,2025-10-01T02:00:00Z,x\n")
        schema = T.StructType([T.StructField("id", T.StringType()), T.StructField("device", T.StringType()),
                               T.StructField("ts", T.StringType()), T.StructField("value", T.StringType())])
        frame = spark.read.csv(os.path.join(scratch, "in.csv"), header=True, schema=schema)
        frame = frame.select(F.col("id").cast("int").alias("id"), "device",
                             F.to_timestamp("ts").alias("ts"), F.col("value").cast("double").alias("value"))
        ranked = frame.withColumn("n", F.row_number().over(Window.partitionBy("device").orderBy("ts")))
        other = spark.createDataFrame([("a", "x"), ("c", "y")], "device string, owner string")
        joined = ranked.join(other, on="device", how="left").withColumn("day", F.to_date("ts"))
        joined.groupBy("day", "owner").agg(F.count("*").alias("n"), F.sum("value").alias("v")).collect()
        joined.write.mode("overwrite").partitionBy("day").parquet(os.path.join(scratch, "out"))
        spark.read.parquet(os.path.join(scratch, "out")).filter(F.col("n") > 0).count()
        spark.read.json(spark.sparkContext.parallelize(['{"a": 1, "b": {"c": "d"}}'])).collect()
        spark.sparkContext.parallelize(range(4), 2).map(lambda x: x + 1).sum()
        spark.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    # Loading and setting up Hadoop's S3 client costs a fresh driver a second at a run's first
    # s3:// path. A client of its own, without credentials, for an endpoint where nothing listens
    # and a bucket it does not probe: it sends no request, and it is closed at once.
    s3a = jvm.org.apache.hadoop.conf.Configuration(False)
    for key, value in {
        "fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "fs.s3a.endpoint": "http://127.0.0.1:9",
        "fs.s3a.endpoint.region": "us-east-1",
        "fs.s3a.bucket.probe": "0",
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.AnonymousAWSCredentialsProvider",
    }.items():
        s3a.set(key, value)
    jvm.org.apache.hadoop.fs.FileSystem.newInstance(jvm.java.net.URI("s3a://warm-up/"), s3a).close()
    jvm.org.apache.hadoop.fs.FileSystem.closeAll()
    # Spark keeps the first context's local directories for the JVM's life: the run's context must
    # take its own spark.local.dir (the run's folder) instead.
    # (A method of the Scala object, which has no static forwarder.)
    utils = jvm.java.lang.Class.forName("org.apache.spark.util.Utils$").getField("MODULE$").get(None)
    utils.clearLocalRootDirs()


warm_up()
os.write(ready_fd, b"ready\n")
os.close(ready_fd)
raw = sys.stdin.buffer.read()
if not raw:
    sys.exit(0)
spec = json.loads(raw)
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.close(null)
os.environ.clear()
os.environ.update(spec["env"])
os.chdir(spec["cwd"])
# As the cold launcher: the script's stderr goes to a file of its own, the JVM's stays on the pipe.
sys.stderr.flush()
descriptor = os.open(spec["stderr"], os.O_WRONLY | os.O_APPEND)
os.dup2(descriptor, 2)
os.close(descriptor)
sys.stderr = open(2, "w", buffering=1, closefd=False)
for key in system.getProperties().stringPropertyNames():
    if key.startswith("spark.") and key not in launched:
        system.clearProperty(key)
for key, value in {**launched, **spec["conf"]}.items():
    system.setProperty(key, value)
sys.path[0] = spec["cwd"]
sys.path[1:1] = spec["python_path"]
sys.argv = [spec["script"], *spec["argv"]]
runpy.run_path(sys.argv[0], run_name="__main__")
'''


def cold_start_reason(arguments: dict[str, str], run_conf: dict[str, str], launched: dict[str, str]) -> str | None:
    """Why a run needs a JVM of its own, or None when a warm driver can serve it."""
    for name in COLD_ARGUMENTS:
        if arguments.get(name):
            return name
    for setting in shlex.split(arguments.get("--conf") or ""):
        key = setting.split("=", 1)[0]
        if key.startswith(JVM_LAUNCH_KEYS):
            return f"--conf {key}"
    for key, value in run_conf.items():
        if key.startswith(JVM_LAUNCH_KEYS) and launched.get(key) != value:
            return f"Spark setting {key}"
    return None


def read_spark_defaults(path: Path) -> dict[str, str]:
    conf: dict[str, str] = {}
    for line in path.read_text().splitlines():
        parts = line.strip().split(maxsplit=1)
        if parts and not parts[0].startswith("#"):
            conf[parts[0]] = parts[1] if len(parts) > 1 else ""
    return conf


class WarmDriver:
    """A started driver process; `ready` once its warm-up is done."""

    def __init__(self, process: subprocess.Popen[bytes], ready_fd: int, directory: Path) -> None:
        self.process = process
        self.directory = directory
        self.ready = False
        self._ready_fd = ready_fd

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self) -> bool:
        try:
            with os.fdopen(self._ready_fd, "rb") as handle:
                said = handle.readline()
        except OSError:
            said = b""
        self.ready = said.strip() == b"ready" and self.process.poll() is None
        return self.ready

    def send(self, spec: dict[str, Any]) -> None:
        """Hand the driver its run; the run then owns the process and its output pipes."""
        stdin = self.process.stdin
        if stdin is None:
            raise OSError("the driver has no stdin")
        stdin.write(json.dumps(spec).encode())
        stdin.close()

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self.process.wait()


class WarmPool:
    """Keeps up to `size` warm drivers, starting one at a time in the background.

    A replacement is started when a run has taken the last ready driver, or once no run holds one:
    the warm-up then does not compete for the CPU with a day's second job when a driver is ready.
    """

    def __init__(
        self, size: int, launch_env: dict[str, str], jars: list[str], spark_defaults: Path, endpoint_url: str
    ) -> None:
        self.size = size
        self._launch_env = launch_env
        self._jars = jars
        self._spark_defaults = spark_defaults
        self._lock = threading.Condition()
        self._ready: list[WarmDriver] = []
        self._starting: WarmDriver | None = None
        self._waiting = 0
        self._in_use = 0
        self._failed_starts = 0
        self._last_done = float("-inf")
        self._closed = False
        self.launched: dict[str, str] = {}
        self._begun = False
        if size > 0:
            threading.Thread(target=self._begin, args=(endpoint_url,), daemon=True).start()

    def _begin(self, endpoint_url: str) -> None:
        # The server writes its Spark configuration before it creates the job runner; a runner made
        # elsewhere may write it later.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if endpoint_url in self._spark_defaults.read_text():
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            log.warning("no Spark configuration for %s: job runs start cold", endpoint_url)
            return
        _remove(WARM_DIR)
        WARM_DIR.mkdir(parents=True, exist_ok=True)
        self._write_driver()
        self._ensure_class_archive()
        with self._lock:
            self._begun = True
            self._fill()

    @property
    def launch_env(self) -> dict[str, str]:
        return dict(self._launch_env)

    @property
    def enabled(self) -> bool:
        return self.size > 0 and self._begun and not self._closed and self._failed_starts < MAX_FAILED_STARTS

    def _write_driver(self) -> None:
        # spark-submit puts SPARK_CONF_DIR first on the JVM's class path, and a class archive can only
        # be made and used with no file in a folder there: the drivers get an empty one, and their
        # settings (`_start`) and logging configuration by name instead.
        (WARM_DIR / "empty").mkdir(exist_ok=True)
        (WARM_DIR / "log4j2.properties").write_text((config.SPARK_CONF_DIR / "log4j2.properties").read_text())
        # Only what the JVM launch needs: everything else is the run's, set when its spec comes.
        defaults = read_spark_defaults(self._spark_defaults)
        self.launched = {
            key: value for key, value in defaults.items()
            if key.startswith(JVM_LAUNCH_KEYS) or key == "spark.master"
        }
        self._archive = CLASS_ARCHIVES / f"{self._fingerprint()}.jsa"
        # The warm-up runs with the runs' SQL settings, so that their code paths are the ones compiled.
        warm_up = {key: value for key, value in defaults.items() if key.startswith("spark.sql.")}
        warm_up["spark.ui.enabled"] = "false"
        (WARM_DIR / "warm-up.json").write_text(json.dumps(warm_up))
        (WARM_DIR / "driver.py").write_text(DRIVER)

    def _fill(self) -> None:
        """Start a driver if one is missing and none is starting. Called with the lock held."""
        if not self.enabled or self._starting is not None or len(self._ready) >= self.size:
            return
        if self._ready:
            # Warming up costs a core for 10-20 s: not while a warm run goes on, nor between a day's jobs.
            idle = time.monotonic() - self._last_done
            if self._in_use:
                return
            if idle < REFILL_DELAY_SECONDS:
                timer = threading.Timer(REFILL_DELAY_SECONDS - idle + 0.1, self._fill_later)
                timer.daemon = True
                timer.start()
                return
        self._starting = self._start()
        threading.Thread(target=self._await_ready, args=(self._starting,), daemon=True).start()

    def _fingerprint(self) -> str:
        """What a class archive must have been made with to be used: the JVM, the class path's jars
        and the launch settings (the JVM refuses an archive of other ones, and runs without it)."""
        java = Path(shutil.which("java", path=self._launch_env.get("PATH")) or "java").resolve()
        home = Path(self._launch_env.get("JAVA_HOME") or java.parent.parent)
        jars = sorted(Path(self._launch_env["SPARK_HOME"], "jars").glob("*.jar")) + [Path(j) for j in self._jars]
        facts = [str(java), _stat(java), _stat(home / "release"), sorted(self.launched.items())]
        facts += [(str(jar), _stat(jar)) for jar in jars]
        return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]

    def _ensure_class_archive(self) -> None:
        """Makes this launch's class archive if there is none: a driver warms up with
        -XX:ArchiveClassesAtExit, and is then told to exit."""
        if self._archive.exists() or not MAKE_CLASS_ARCHIVE:
            return
        CLASS_ARCHIVES.mkdir(parents=True, exist_ok=True)
        partial = self._archive.with_suffix(f".{os.getpid()}.{time.time_ns()}.partial")
        started = time.monotonic()
        # The JVM logs a line for each class it leaves out, to its standard output by default, which
        # nobody reads here: the lines go to a file next to the archive instead.
        log_file = self._archive.with_suffix(".log")
        with self._lock:
            if self._closed:
                return
            # Where `close` finds it, to stop it with the stack.
            driver = self._starting = self._start(
                f"-XX:ArchiveClassesAtExit={partial} -Xlog:disable -Xlog:all=warning:file={log_file}"
            )

        def exited() -> bool:
            # The driver exits at once; its JVM once the archive is written.
            return driver.process.poll() is not None and not _group_alive(driver.process.pid)

        try:
            if driver.wait_ready():
                driver.process.stdin.close()  # no run: the driver exits, the JVM writes the archive
                deadline = time.monotonic() + ARCHIVE_SECONDS
                while not exited() and time.monotonic() < deadline:
                    time.sleep(0.2)
            if partial.exists() and exited():
                os.replace(partial, self._archive)
                log.info("Spark class archive %s made in %.1f s", self._archive.name, time.monotonic() - started)
                # Archives of earlier jars or JVMs are of no further use.
                for other in CLASS_ARCHIVES.iterdir():
                    if other.stem != self._archive.stem and other.suffix in (".jsa", ".log"):
                        other.unlink(missing_ok=True)
            else:
                log.warning("no Spark class archive could be made: drivers start without one")
        finally:
            with self._lock:
                self._starting = None
            self._discard(driver)
            partial.unlink(missing_ok=True)

    def _start(self, archive_option: str | None = None) -> WarmDriver:
        directory = WARM_DIR / f"driver-{time.time_ns()}"
        directory.mkdir(parents=True)
        read_end, write_end = os.pipe()
        # The launch settings with the logging configuration and the class archive; the launched
        # settings that runs are compared with (`self.launched`) stay as configured.
        options = [
            self.launched.get("spark.driver.extraJavaOptions", ""),
            f"-Dlog4j2.configurationFile={WARM_DIR / 'log4j2.properties'}",
            archive_option or f"-XX:SharedArchiveFile={self._archive}",
        ]
        settings = {**self.launched, "spark.driver.extraJavaOptions": " ".join(o for o in options if o)}
        properties = directory / "spark-defaults.conf"
        properties.write_text("".join(f"{k} {v}\n" for k, v in settings.items()))
        jars = f"--jars {','.join(self._jars)} " if self._jars else ""
        env = {
            **self._launch_env,
            "SPARK_CONF_DIR": str(WARM_DIR / "empty"),
            "PYSPARK_SUBMIT_ARGS": f"--master local[2] --properties-file {properties} {jars}pyspark-shell",
        }
        try:
            process = subprocess.Popen(
                [sys.executable, "-u", str(WARM_DIR / "driver.py"), str(write_end), str(WARM_DIR / "warm-up.json")],
                cwd=directory,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                pass_fds=(write_end,),
            )
        finally:
            os.close(write_end)
        return WarmDriver(process, read_end, directory)

    def _await_ready(self, driver: WarmDriver) -> None:
        started = time.monotonic()
        ready = driver.wait_ready()
        with self._lock:
            self._starting = None
            if ready and not self._closed:
                self._failed_starts = 0
                self._ready.append(driver)
                log.info("warm Spark driver %s ready in %.1f s", driver.pid, time.monotonic() - started)
            else:
                if not self._closed:
                    self._failed_starts += 1
                    log.warning("warm Spark driver %s did not start (exit code %s)%s", driver.pid,
                                driver.process.poll(),
                                "; giving up on warm starts" if not self.enabled else "")
                threading.Thread(target=self._discard, args=(driver,), daemon=True).start()
            self._fill()
            self._lock.notify_all()

    def _fill_later(self) -> None:
        with self._lock:
            self._fill()

    def _discard(self, driver: WarmDriver) -> None:
        driver.kill()
        _remove(driver.directory)

    def take(self, wait_seconds: float = WAIT_FOR_STARTING_SECONDS) -> WarmDriver | None:
        """A ready driver, or None (the run starts cold). With no driver ready, waits for one being
        started, unless other runs already wait for it."""
        deadline = time.monotonic() + wait_seconds
        with self._lock:
            self._waiting += 1
            try:
                while self.enabled:
                    while self._ready:
                        driver = self._ready.pop(0)
                        if driver.process.poll() is None:
                            self._in_use += 1
                            self._fill()
                            return driver
                        threading.Thread(target=self._discard, args=(driver,), daemon=True).start()
                    self._fill()
                    remaining = deadline - time.monotonic()
                    if self._starting is None or self._waiting > 1 or remaining <= 0:
                        return None
                    self._lock.wait(remaining)
                return None
            finally:
                self._waiting -= 1

    def done(self, driver: WarmDriver) -> None:
        """The run of `driver` has ended: its process is gone."""
        _remove(driver.directory)
        with self._lock:
            self._in_use -= 1
            self._last_done = time.monotonic()
            self._fill()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            drivers, self._ready = self._ready, []
            if self._starting is not None:
                drivers.append(self._starting)
            self._lock.notify_all()
        for driver in drivers:
            self._discard(driver)


def _remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def _stat(path: Path) -> list[int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return [status.st_size, status.st_mtime_ns]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # there, but not ours to signal
    return True
