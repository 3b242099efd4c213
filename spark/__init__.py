"""Scale-out on Apache Spark: the Parquet lake, the transpiled SQL, features and training sets.

Nothing here imports pyspark at package import: ``nextbest data export`` writes a
lake without the ``spark`` extra installed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

from nextbest.errors import BadInputError


def require_spark() -> None:
    """Fail with the fix when the ``spark`` extra or a Java runtime is missing."""
    missing = [m for m in ("pyspark", "sqlglot") if importlib.util.find_spec(m) is None]
    if missing:
        raise BadInputError(f"--engine spark needs {' and '.join(missing)}: pip install 'nextbest[spark]'")
    if os.environ.get("SPARK_REMOTE"):
        return  # Spark Connect: the JVM runs on the cluster
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and os.path.exists(os.path.join(java_home, "bin", "java"))):
        raise BadInputError("--engine spark needs a Java runtime (17 or later) for local Spark: "
                            "apt-get install openjdk-17-jre-headless, or set JAVA_HOME")
