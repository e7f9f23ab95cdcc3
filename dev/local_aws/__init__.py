"""A local AWS stack for developing and testing the pipeline without an AWS account.

One background process serves moto's S3, IAM, STS, CloudWatch Logs, Secrets Manager and Glue APIs on
127.0.0.1, extended so that Glue crawlers really crawl the emulated S3 and Glue job runs really run
their scripts (spark-submit or python); next to it runs a private PostgreSQL cluster. See README.md.
"""
