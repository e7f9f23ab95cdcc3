"""Hardware-error correlation: the pure transforms and shared I/O helpers of the Glue jobs.

Shipped to Glue as a zip with `--extra-py-files`; imports nothing from Airflow, and `awsglue` only
where it is present.
"""
