"""The Spark session nextbest's Spark jobs run in.

Local mode (``local[2]``) by default; ``--master URL`` (``spark://host:7077``,
``yarn``, ``k8s://...``) or ``SPARK_REMOTE`` (Spark Connect, ``sc://host:15002``)
for a cluster. Settings nextbest relies on:

* ``PYSPARK_PYTHON`` is this interpreter, so Python workers (``mapInPandas``)
  import the same nextbest and libraries as the driver;
* the session time zone is UTC: warehouse timestamps carry no zone;
* ANSI mode off: a division by zero is NULL, as in DuckDB (the feature SQL
  relies on it wherever a denominator can be empty);
* few shuffle partitions in local mode (the default 200 only costs time there).

The driver's JVM logs errors only (``log4j2.properties``). When the CLI routes
library output to the workspace's log file (:mod:`nextbest.logfile`), the JVM's
output goes there too: the JVM prints start-up lines no log4j setting reaches
(``WARNING: Using incubator modules: jdk.incubator.vector``, from Java's module
system, for the vector module Spark's launcher always adds).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

from nextbest import logfile

#: Spark's default master for nextbest: two local cores.
LOCAL_MASTER = "local[2]"
#: Shuffle partitions in local mode: a few per core.
LOCAL_SHUFFLE_PARTITIONS = 4
#: Spark's JVM logs errors only (its INFO/WARN lines would drown the CLI's output).
LOG4J = Path(__file__).with_name("log4j2.properties")
#: Session settings every nextbest Spark job needs (see the module docstring).
CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


def get_session(master: str | None = None) -> SparkSession:
    """The Spark session for ``master`` (``None``: ``SPARK_REMOTE`` if set, else ``local[2]``).

    Reuses a session already active in this process (as a notebook or a test
    suite would have), applying the settings above to it.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder
    settings = {"spark.app.name": "nextbest", **CONF}
    remote = os.environ.get("SPARK_REMOTE") if master is None else None
    if remote:
        builder = builder.remote(remote)
    else:
        master = master or LOCAL_MASTER
        settings["spark.master"] = master
        if master.startswith("local"):
            settings["spark.sql.shuffle.partitions"] = str(LOCAL_SHUFFLE_PARTITIONS)
            # The driver is the executor: give it room for toPandas of a snapshot.
            settings["spark.driver.memory"] = os.environ.get("NEXTBEST_SPARK_DRIVER_MEMORY", "2g")
        settings["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={LOG4J.as_uri()}"
        _start_driver(settings)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    for key, value in CONF.items():
        if not key.startswith("spark.ui"):
            session.conf.set(key, value)
    if not remote:
        session.sparkContext.setLogLevel("ERROR")
    # py4j logs every gateway call at INFO; keep it off the screen.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    return session


def _start_driver(settings: dict[str, str]) -> None:
    """Start the driver's JVM with its output in the workspace's log file, when library output goes there.

    PySpark's ``launch_gateway`` takes Popen arguments for this (its developer hook for
    capturing the JVM's output); the SparkContext started on that gateway is the one
    ``getOrCreate`` then returns. Nothing happens when a JVM runs already (a session
    reused or stopped in this process) or the output is not routed (tests, notebooks).
    """
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None:  # noqa: SLF001 (PySpark keeps one JVM per process, here)
        return
    stream = logfile.open_for_child("spark")
    if stream is None:
        return
    conf = SparkConf(loadDefaults=False).setAll(list(settings.items()))
    with stream:
        # stdout too: the gateway's port comes through a file, and `--json` output must stay clean.
        gateway = launch_gateway(conf, popen_kwargs={"stdout": stream, "stderr": stream})
    SparkContext(conf=conf, gateway=gateway)
