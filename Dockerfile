# The project's image: Airflow with the pinned requirements, Java 17 and Spark's jars for the local
# Glue runs, and the folders that ship (dags, plugins, include, glue_scripts, infrastructure). The
# local AWS stack's own code (dev/local_aws, and the raw-zone uploader and sample data for seeding)
# is the only local tooling inside. docker-compose.yaml runs every service from it.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      openjdk-17-jre-headless procps tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 50000 --gid 0 --create-home --home-dir /home/airflow airflow

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64 \
    PYTHONPATH=/opt/project \
    PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/project/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/project/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

COPY requirements.txt /opt/project/requirements.txt
RUN python3 -m venv /opt/venv \
 && pip install --no-cache-dir --disable-pip-version-check -r /opt/project/requirements.txt

# Spark's JVM dependencies, the same list `make setup` fetches, checked by digest.
COPY dev/spark_jars.txt dev/docker/fetch_jars.py /tmp/jars/
RUN python3 /tmp/jars/fetch_jars.py /tmp/jars/spark_jars.txt /opt/project/.local/jars && rm -rf /tmp/jars

COPY dags /opt/project/dags
COPY plugins /opt/project/plugins
COPY include /opt/project/include
COPY glue_scripts /opt/project/glue_scripts
COPY infrastructure /opt/project/infrastructure
COPY dev/__init__.py dev/raw_zone.py /opt/project/dev/
COPY dev/local_aws /opt/project/dev/local_aws
COPY dev/sample_data /opt/project/dev/sample_data
RUN mkdir -p /opt/airflow/auth \
 && chown -R airflow:0 /opt/airflow /opt/project/.local \
 && chmod -R g+w /opt/airflow /opt/project/.local

USER airflow
WORKDIR /opt/project
ENTRYPOINT ["tini", "--"]
CMD ["airflow", "version"]
