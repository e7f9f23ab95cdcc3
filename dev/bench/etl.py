"""Benchmark sections of the Glue jobs' code, run locally on one synthetic day.

The day: 5M log rows (10% errors), about 100k sales and 5k customers from `dev.datagen` (fixed
seed), written once into `.local/bench/` and reused.

- `etl_vs_duckdb`: the ETL's transform and write (`hardware_correlation.etl.run_etl`, the job's own
  code path, in a local[2] Spark session on local files) against DuckDB doing the same filter, sale
  and customer joins, age and Parquet write, taking turns; medians of RUNS. Figures `etl_seconds`,
  `duckdb_seconds`, `etl_vs_duckdb` (goal: at most 4) and `etl_peak_rss_mib`, the peak memory of the
  Spark driver, JVM and Python together (goal: under 2 GiB). The ETL's audit must equal what the
  generator wrote, or the section fails.
- `etl_vs_seed_spark`, in the same section, same session and settings, taking turns with the ETL:
  the seed's own Glue script (read the three CSVs, keep `event_type = 'ERROR'`, join sales on
  device_id and customers, compute the age, select and rename, write Parquet), the naive job users
  would otherwise run. Figures `seed_spark_seconds` and `etl_vs_seed_spark` (goal: at most 2.5: the
  validation, deduplication, as-of match, quarantine, exposure and audit of docs/contract.md,
  section 3, cost at most one and a half times again).
  `etl_rows_per_core_s` (log rows per second per Spark core) is the input of the Glue cost table in
  docs/aws.md.
  `etl_spark_jobs` and `seed_spark_jobs`: the Spark jobs that one run of each issues (goal for the
  ETL: at most 12; every job has its scheduling, and on a small day its start-up, cost).
- `etl_scaling`: the ETL alone at 1M, 5M and 20M log rows of the same fleet (generated once each),
  in a Spark process of its own with the same settings, after one warm-up run at 1M. Figures
  `etl_seconds_<N>M`, `etl_20M_vs_5M` (goal: at most 4.4, a little above linear), the bytes that
  Spark spilled at each size (`etl_spill_bytes_<N>M`; goal: none), the log lines of whole-stage code
  too large to be compiled or JIT-compiled (`etl_codegen_too_long_lines`; goal: none), and
  `etl_peak_rss_mib_20M`, the process's peak memory at 20M.
- `exposure_cost`: the same ETL with and without its `device_day_activity` output, taking turns;
  medians of RUNS. Figures `etl_seconds_without_exposure`, `etl_seconds_with_exposure`,
  `exposure_cost` (their ratio) and `device_days`.
- `load_vs_copy`: the load job's staging write (`warehouse.copy_rows`: CSV files streamed into COPY
  through the JDBC driver, with the Glue Connection's URL and the secret's credentials, as in Glue)
  of the ETL's rows into the stack's PostgreSQL, against psycopg2's COPY of the same rows and
  Spark's JDBC writer with batched inserts; medians of RUNS. Figures `load_rows_per_s` (goal: at
  least 250k), `copy_rows_per_s` and `jdbc_insert_rows_per_s`.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from functools import partial
from pathlib import Path

from dev.bench import BenchError

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / ".local" / "bench"
JARS = REPO / ".local" / "jars"
DAY = date(2025, 10, 1)
ROWS = 5_000_000
# About 100k sales: devices * (1 - never sold 0.5%) * (1 + resales 10%).
DEVICES = 91_400
CUSTOMERS = 5_000
SEED = 20251001
RUNS = 3
# local[2]: the figures are for two Spark cores.
SPARK_CORES = 2
AUDIT_COUNTS = ("input_rows", "malformed", "duplicates", "non_error", "no_sale", "unknown_customer", "loaded")
STAGING_TABLE = "staging.bench_hardware_error_analysis"

if str(REPO / "glue_scripts") not in sys.path:
    sys.path.insert(0, str(REPO / "glue_scripts"))



def dataset(rows: int = ROWS) -> tuple[Path, dict]:
    """The synthetic raw zone and the generator's expected outcome of the day (made once per size).

    Every size has the same fleet (devices, sales, customers): only the rows per device grow."""
    from dev.datagen import write_dataset

    folder = BENCH_DIR / f"raw-{rows}-{SEED}"
    summary = folder / "summary.json"
    if summary.exists():
        return folder / "raw", json.loads(summary.read_text())
    written = write_dataset(
        folder / "raw", start=DAY, days=1, devices=DEVICES, rows_per_day=rows, customers=CUSTOMERS,
        seed=SEED, error_rate=0.10, overwrite=True,
    )
    expected = {name: getattr(written.days[0], name) for name in AUDIT_COUNTS}
    summary.write_text(json.dumps(expected))
    return folder / "raw", expected


def spark_session(**settings: str):
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in settings.items():
        builder = builder.config(key, value)
    return (
        builder.master(f"local[{SPARK_CORES}]")
        .appName("bench")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.jars", ",".join(str(path) for path in sorted(JARS.glob("*.jar"))))
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .getOrCreate()
    )


class PeakMemory:
    """Peak resident memory of this process and its children (the Spark JVM), sampled every 50 ms."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> int:
        import psutil

        total = 0
        for process in [self._process, *self._process.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue  # a child that ended (or went out of reach) since it was listed uses no memory
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._sample())

    @contextmanager
    def watching(self) -> Iterator[None]:
        self._stop.clear()
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()
            self.peak = max(self.peak, self._sample())


def _etl_inputs(raw: Path):
    from hardware_correlation import storage
    from hardware_correlation.etl import EtlInputs

    return EtlInputs(
        log_files=storage.list_files(str(raw / "hardware_logs" / f"dt={DAY}"), ".csv"),
        customer_files=storage.list_files(str(raw / "customers"), ".csv"),
        sale_files=storage.list_files(str(raw / "sales"), ".csv"),
    )


def _etl_outputs(out: Path, exposure: bool = True):
    from hardware_correlation.etl import EtlOutputs

    return EtlOutputs(
        str(out / "hardware_error_analysis"), str(out / "quarantine" / "hardware_logs"), str(out / "audit"),
        activity_path=str(out / "device_day_activity") if exposure else None,
    )


# The same filter, sale and customer joins, age and Parquet write. Statement by statement: as one
# query with common table expressions, DuckDB 2.0 plans the as-of join hundreds of times slower.
DUCKDB_STATEMENTS = (
    """
    CREATE TEMP TABLE errors AS
    SELECT log_id, device_id, TRY_CAST(cpu_temp_celsius AS INTEGER) AS cpu_temp_celsius,
           TRY_CAST(memory_usage_gb AS DOUBLE) AS memory_usage_gb,
           TRY_CAST("timestamp" AS TIMESTAMPTZ) AS error_timestamp,
           CAST(TRY_CAST("timestamp" AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS DATE) AS error_date
    FROM read_csv(
        '{logs}', header = true, auto_detect = false, delim = ',', quote = '"',
        hive_partitioning = false, strict_mode = false, null_padding = true,
        columns = {{'log_id': 'VARCHAR', 'timestamp': 'VARCHAR', 'device_id': 'VARCHAR',
                   'event_type': 'VARCHAR', 'cpu_temp_celsius': 'VARCHAR', 'memory_usage_gb': 'VARCHAR'}}
    )
    WHERE upper(trim(event_type)) = 'ERROR'
    """,
    """
    CREATE TEMP TABLE sales AS
    SELECT sale_id, customer_id, device_id, CAST(sale_date AS DATE) AS sale_date
    FROM read_csv('{sales}', header = true, all_varchar = true, delim = ',')
    """,
    """
    CREATE TEMP TABLE customers AS
    SELECT * FROM read_csv('{customers}', header = true, all_varchar = true, delim = ',')
    """,
    """
    COPY (
        SELECT e.log_id, e.device_id, e.cpu_temp_celsius, e.memory_usage_gb, s.sale_id,
               CAST(e.error_date - s.sale_date AS INTEGER) AS days_since_sale, c.customer_name,
               c.industry, s.customer_id, s.sale_date, e.error_timestamp, DATE '{day}' AS log_date
        FROM errors e
        ASOF JOIN sales s ON e.device_id = s.device_id AND e.error_date >= s.sale_date
        JOIN customers c ON c.customer_id = s.customer_id
    ) TO '{out}' (FORMAT parquet)
    """,
)


def _duckdb_once(raw: Path, out: Path) -> float:
    """One DuckDB run, in a process of its own: DuckDB keeps its memory after a query, which would
    count as the Spark driver's in this process."""
    import subprocess

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    result = subprocess.run(
        [sys.executable, "-m", "dev.bench.etl", "duckdb", str(raw), str(out)],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def _duckdb_run(raw: Path, out: Path) -> float:
    import duckdb

    values = {
        "logs": raw / "hardware_logs" / f"dt={DAY}" / "*.csv", "sales": raw / "sales" / "sales.csv",
        "customers": raw / "customers" / "customers.csv", "day": DAY, "out": out / "errors.parquet",
    }
    connection = duckdb.connect()
    try:
        connection.execute("SET enable_progress_bar = false")
        started = time.perf_counter()
        for statement in DUCKDB_STATEMENTS:
            connection.execute(statement.format(**values))
        return time.perf_counter() - started
    finally:
        connection.close()


def _seed_spark_once(spark, raw: Path, out: Path) -> float:
    """The seed's Glue script, as a user would write it without docs/contract.md: no validation, no
    deduplication, a plain join on device_id (a resold device's error joins every sale of it)."""
    from pyspark.sql import functions as F

    from hardware_correlation import schemas

    started = time.perf_counter()
    logs = spark.read.option("header", True).schema(schemas.all_strings(schemas.LOG_COLUMNS)).csv(
        str(raw / "hardware_logs" / f"dt={DAY}")
    )
    sales = spark.read.option("header", True).schema(schemas.RAW_SALES).csv(str(raw / "sales"))
    customers = spark.read.option("header", True).schema(schemas.RAW_CUSTOMERS).csv(str(raw / "customers"))
    errors = logs.filter(F.col("event_type") == "ERROR")
    joined = errors.join(sales, on="device_id", how="inner").join(customers, on="customer_id", how="inner")
    error_timestamp = F.to_timestamp("timestamp")
    (
        joined.select(
            "log_id",
            "device_id",
            F.col("cpu_temp_celsius").cast("int").alias("cpu_temp_celsius"),
            F.col("memory_usage_gb").cast("double").alias("memory_usage_gb"),
            "sale_id",
            F.datediff(F.to_date(error_timestamp), F.to_date("sale_date")).alias("days_since_sale"),
            "customer_name",
            "industry",
            "customer_id",
            F.to_date("sale_date").alias("sale_date"),
            error_timestamp.alias("error_timestamp"),
            F.lit(DAY).alias("log_date"),
        )
        .write.mode("overwrite")
        .partitionBy("log_date")
        .parquet(str(out))
    )
    return time.perf_counter() - started


def _spark_jobs(spark, group: str, run: Callable[[], object]) -> tuple[object, int]:
    """What `run` returns, and how many Spark jobs it issued (AQE's query stages and broadcasts
    included: each is a job of its own)."""
    context = spark.sparkContext
    context.setJobGroup(group, group)
    try:
        result = run()
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
        context.setLocalProperty("spark.job.description", None)
    return result, len(context.statusTracker().getJobIdsForGroup(group))


def etl_vs_duckdb() -> Iterator[tuple[str, object]]:
    from hardware_correlation.etl import configure, run_etl

    raw, expected = dataset()
    spark = spark_session()
    # The ETL's session settings for the reference too: the comparison is of the jobs, not the settings.
    configure(spark)
    inputs = _etl_inputs(raw)
    memory = PeakMemory()
    etl_times, duckdb_times, seed_times = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-", dir=BENCH_DIR) as scratch:
        for run in range(RUNS):
            duckdb_times.append(_duckdb_once(raw, Path(scratch) / "duckdb"))
            seed_time, seed_jobs = _spark_jobs(
                spark, f"bench-seed-{run}", partial(_seed_spark_once, spark, raw, Path(scratch) / "seed")
            )
            seed_times.append(seed_time)
            outputs = _etl_outputs(Path(scratch) / "etl")
            with memory.watching():
                started = time.perf_counter()
                audit, etl_jobs = _spark_jobs(
                    spark, f"bench-etl-{run}", partial(run_etl, spark, DAY, inputs, outputs, "bench")
                )
                etl_times.append(time.perf_counter() - started)
            found = {name: audit[name] for name in AUDIT_COUNTS}
            if found != expected:
                raise BenchError(f"the ETL's audit {found} differs from the generated day's {expected}")
        # The load section stages these rows.
        processed = BENCH_DIR / "processed"
        shutil.rmtree(processed, ignore_errors=True)
        shutil.copytree(Path(scratch) / "etl" / "hardware_error_analysis", processed)
    etl, duck, seed = (statistics.median(times) for times in (etl_times, duckdb_times, seed_times))
    yield "etl_seconds", round(etl, 2)
    yield "seed_spark_seconds", round(seed, 2)
    yield "etl_vs_seed_spark", round(etl / seed, 2)
    yield "etl_spark_jobs", etl_jobs
    yield "seed_spark_jobs", seed_jobs
    yield "duckdb_seconds", round(duck, 2)
    yield "etl_vs_duckdb", round(etl / duck, 2)
    yield "etl_peak_rss_mib", round(memory.peak / 2**20)
    rows_per_core_s = ROWS / etl / SPARK_CORES
    yield "etl_rows_per_core_s", round(rows_per_core_s)
    from dev.bench.glue_cost import figures

    yield from figures(rows_per_core_s)


SCALING_ROWS = (1_000_000, 5_000_000, 20_000_000)
# The loggers of the messages that say a stage's generated code is too large: past
# spark.sql.codegen.hugeMethodLimit Spark runs the stage without whole-stage code generation, and a
# method over 8000 bytes of bytecode is never JIT-compiled. Both log at INFO.
CODEGEN_LOGGERS = (
    "org.apache.spark.sql.execution.WholeStageCodegenExec",
    "org.apache.spark.sql.catalyst.expressions.codegen.CodeGenerator",
)
CODEGEN_TOO_LONG = ("Found too long generated codes", "Generated method too long")


def etl_scaling() -> Iterator[tuple[str, object]]:
    """The ETL at each of SCALING_ROWS, in a Spark process of its own (its log and memory apart)."""
    import subprocess

    for rows in SCALING_ROWS:
        dataset(rows)
    memory = PeakMemory()
    with tempfile.TemporaryDirectory(prefix="bench-", dir=BENCH_DIR) as scratch, memory.watching():
        result = subprocess.run(
            [sys.executable, "-m", "dev.bench.etl", "scaling", scratch],
            cwd=REPO, capture_output=True, text=True,
        )
    if result.returncode != 0:
        raise BenchError(f"the scaling run failed: {result.stderr[-2000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for rows in SCALING_ROWS:
        yield f"etl_seconds_{rows // 1_000_000}M", figures["seconds"][str(rows)]
    yield "etl_20M_vs_5M", round(figures["seconds"][str(20_000_000)] / figures["seconds"][str(5_000_000)], 2)
    for rows in SCALING_ROWS:
        yield f"etl_spill_bytes_{rows // 1_000_000}M", figures["spill_bytes"][str(rows)]
    too_long = [line for line in result.stderr.splitlines() if any(text in line for text in CODEGEN_TOO_LONG)]
    yield "etl_codegen_too_long_lines", len(too_long)
    yield "etl_peak_rss_mib_20M", round(memory.peak / 2**20)


def _spilled_bytes(event_log: Path, jobs: set[int]) -> int:
    """Memory and disk bytes spilled by the stages of `jobs`, from a Spark event log."""
    stages: set[int] = set()
    spilled = 0
    for line in event_log.read_text().splitlines():
        event = json.loads(line)
        if event["Event"] == "SparkListenerJobStart" and event["Job ID"] in jobs:
            stages.update(event["Stage IDs"])
        elif event["Event"] == "SparkListenerStageCompleted" and event["Stage Info"]["Stage ID"] in stages:
            for metric in event["Stage Info"].get("Accumulables", []):
                if metric["Name"] in ("internal.metrics.memoryBytesSpilled", "internal.metrics.diskBytesSpilled"):
                    spilled += int(metric["Value"])
    return spilled


def _scaling_run(scratch: Path) -> dict:
    """In its own process: the ETL at SCALING_ROWS; seconds and spilled bytes per size."""
    from hardware_correlation.etl import configure, run_etl

    events = scratch / "events"
    events.mkdir()
    spark = spark_session(**{"spark.eventLog.enabled": "true", "spark.eventLog.dir": str(events)})
    jvm = spark.sparkContext._jvm
    for logger in CODEGEN_LOGGERS:
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(logger, jvm.org.apache.logging.log4j.Level.INFO)
    configure(spark)
    seconds, jobs = {}, {}
    for label, rows in (("warm-up", SCALING_ROWS[0]), *((rows, rows) for rows in SCALING_ROWS)):
        raw, expected = dataset(rows)
        group = f"scaling-{label}"
        started = time.perf_counter()
        outputs = _etl_outputs(scratch / f"out-{label}")
        audit, _ = _spark_jobs(spark, group, partial(run_etl, spark, DAY, _etl_inputs(raw), outputs, "bench"))
        elapsed = time.perf_counter() - started
        if {name: audit[name] for name in AUDIT_COUNTS} != expected:
            raise BenchError(f"the ETL's audit at {rows} rows differs from the generated day's {expected}")
        shutil.rmtree(scratch / f"out-{label}", ignore_errors=True)
        if label != "warm-up":
            seconds[str(rows)] = round(elapsed, 2)
            jobs[str(rows)] = set(spark.sparkContext.statusTracker().getJobIdsForGroup(group))
    spark.stop()
    (event_log,) = events.iterdir()
    return {"seconds": seconds, "spill_bytes": {rows: _spilled_bytes(event_log, ids) for rows, ids in jobs.items()}}


def exposure_cost() -> Iterator[tuple[str, object]]:
    """The ETL with and without its device_day_activity output, taking turns; medians of RUNS."""
    from hardware_correlation.etl import run_etl

    raw, expected = dataset()
    spark = spark_session()
    inputs = _etl_inputs(raw)
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="bench-", dir=BENCH_DIR) as scratch:
        for _ in range(RUNS):
            for exposure in (False, True):
                started = time.perf_counter()
                audit = run_etl(spark, DAY, inputs, _etl_outputs(Path(scratch) / "etl", exposure), "bench")
                times[exposure].append(time.perf_counter() - started)
                found = {name: audit[name] for name in AUDIT_COUNTS}
                if found != expected:
                    raise BenchError(f"the ETL's audit {found} differs from the generated day's {expected}")
    without, with_exposure = statistics.median(times[False]), statistics.median(times[True])
    yield "etl_seconds_without_exposure", round(without, 2)
    yield "etl_seconds_with_exposure", round(with_exposure, 2)
    yield "exposure_cost", round(with_exposure / without, 2)
    yield "device_days", audit["device_days"]


def _stack_env() -> dict[str, str]:
    from dev.local_aws.stack import ensure_up

    env = ensure_up()
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        os.environ[name] = env[name]
    return env


def _copy_once(dsn: str, csv_path: Path, rows: int) -> float:
    import psycopg2

    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {STAGING_TABLE}_copy")
        cursor.execute(f"CREATE TABLE {STAGING_TABLE}_copy (LIKE hardware_error_analysis)")
        connection.commit()
        with open(csv_path, encoding="utf-8") as handle:
            started = time.perf_counter()
            cursor.copy_expert(f"COPY {STAGING_TABLE}_copy FROM STDIN WITH (FORMAT csv)", handle)
            connection.commit()
            elapsed = time.perf_counter() - started
        cursor.execute(f"SELECT count(*) FROM {STAGING_TABLE}_copy")
        if cursor.fetchone()[0] != rows:
            raise BenchError("COPY did not load every row")
        cursor.execute(f"DROP TABLE {STAGING_TABLE}_copy")
    return elapsed


def load_vs_copy() -> Iterator[tuple[str, object]]:
    import duckdb
    import psycopg2

    import load_job
    from hardware_correlation import warehouse
    from include.settings import load

    processed = BENCH_DIR / "processed"
    if not processed.is_dir():
        raise BenchError("run the etl section first: the load section stages its rows")
    env = _stack_env()
    dsn = env["WAREHOUSE_DSN"]
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        for ddl in sorted((REPO / "include" / "sql" / "ddl").glob("*.sql")):
            cursor.execute(ddl.read_text())
    url, properties = load_job.warehouse_jdbc(load(env).GLUE_WAREHOUSE_CONNECTION)

    spark = spark_session()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    day_rows = load_job.staging_rows(load_job.read_day(spark, str(processed), DAY)).cache()
    rows = day_rows.count()
    load_times, copy_times = [], []
    with tempfile.TemporaryDirectory(prefix="bench-", dir=BENCH_DIR) as scratch:
        csv_path = Path(scratch) / "rows.csv"
        duckdb.execute(
            f"COPY (SELECT * EXCLUDE (log_date), DATE '{DAY}' AS log_date"
            f" FROM read_parquet('{processed}/log_date={DAY}/*.parquet'))"
            f" TO '{csv_path}' (FORMAT csv, HEADER false)"
        )
        jdbc_times = []
        for run in range(RUNS):
            started = time.perf_counter()
            warehouse.copy_rows(spark, day_rows, url, properties, STAGING_TABLE, str(Path(scratch) / f"load-{run}"))
            load_times.append(time.perf_counter() - started)
            copy_times.append(_copy_once(dsn, csv_path, rows))
            # Spark's own JDBC writer with batched inserts, for comparison.
            started = time.perf_counter()
            (
                day_rows.write.mode("overwrite").option("batchsize", 10_000)
                .option("reWriteBatchedInserts", "true").jdbc(url, f"{STAGING_TABLE}_jdbc", properties=properties)
            )
            jdbc_times.append(time.perf_counter() - started)
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {STAGING_TABLE}")
        staged = cursor.fetchone()[0]
        cursor.execute(f"DROP TABLE IF EXISTS {STAGING_TABLE}")
        cursor.execute(f"DROP TABLE IF EXISTS {STAGING_TABLE}_jdbc")
    day_rows.unpersist()
    if staged != rows:
        raise BenchError(f"the load staged {staged} rows of {rows}")
    yield "load_rows", rows
    yield "load_rows_per_s", round(rows / statistics.median(load_times))
    yield "copy_rows_per_s", round(rows / statistics.median(copy_times))
    yield "jdbc_insert_rows_per_s", round(rows / statistics.median(jdbc_times))


if __name__ == "__main__" and sys.argv[1:2] == ["duckdb"]:
    print(_duckdb_run(Path(sys.argv[2]), Path(sys.argv[3])))
if __name__ == "__main__" and sys.argv[1:2] == ["scaling"]:
    print(json.dumps(_scaling_run(Path(sys.argv[2]))))
