"""Scale-out on Apache Spark: the Parquet lake, the transpiled SQL, features and training sets."""
