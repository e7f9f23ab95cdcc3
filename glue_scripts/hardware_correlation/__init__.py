"""Hardware-error correlation: the pure transforms and shared I/O helpers of the Glue jobs.

Shipped to Glue as a zip with `--extra-py-files`; plain PySpark, boto3 and the standard library:
it imports nothing from Airflow, and nothing from `awsglue`, so it runs the same outside Glue.
"""
