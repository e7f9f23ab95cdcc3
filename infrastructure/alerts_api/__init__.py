"""The alerts API: a Lambda handler behind API Gateway that stores device alerts in the raw zone."""
