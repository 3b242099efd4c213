"""The Spark session nextbest's Spark jobs run in."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession


def get_session(master: str | None = None) -> SparkSession:
    """A Spark session: local mode on two cores unless ``master`` (or ``SPARK_REMOTE``) names a cluster.

    Parameters
    ----------
    master
        Spark master URL (``local[4]``, ``spark://host:7077``, ``yarn``…); default ``local[2]``.

    Notes
    -----
    Python workers must run this interpreter (the venv's, which has nextbest and its
    dependencies): ``mapInPandas`` workers fail otherwise. Times are UTC, as in the warehouse.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.appName("nextbest")
    if not os.environ.get("SPARK_REMOTE"):
        builder = builder.master(master or "local[2]")
    session = (
        builder.config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session
