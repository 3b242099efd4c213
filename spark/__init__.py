"""Scale-out on Apache Spark: the same features, training sets and batch decisions on a cluster.

Needs the ``spark`` extra (``pip install 'nextbest[spark]'``) and Java 17.
"""
