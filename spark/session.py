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
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

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
    builder = SparkSession.builder.appName("nextbest")
    remote = os.environ.get("SPARK_REMOTE") if master is None else None
    if remote:
        builder = builder.remote(remote)
    else:
        master = master or LOCAL_MASTER
        builder = builder.master(master)
        if master.startswith("local"):
            builder = builder.config("spark.sql.shuffle.partitions", str(LOCAL_SHUFFLE_PARTITIONS))
            # The driver is the executor: give it room for toPandas of a snapshot.
            builder = builder.config("spark.driver.memory", os.environ.get("NEXTBEST_SPARK_DRIVER_MEMORY", "2g"))
        builder = builder.config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOG4J.as_uri()}")
    for key, value in CONF.items():
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
