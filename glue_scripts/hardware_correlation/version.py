"""The scripts version this package was deployed as.

The deployment (include/glue_deploy.py) adds a `VERSION` file, the content hash of the scripts, to
the package's zip. What a job writes about itself (the ETL's audit.json) names the version of the
code that really ran, not the version its caller meant to start.
"""

from __future__ import annotations

import pkgutil

VERSION_FILE = "VERSION"


def deployed_version() -> str | None:
    """The version in the package's zip; None when the package is not from a deployment (tests)."""
    try:
        data = pkgutil.get_data("hardware_correlation", VERSION_FILE)
    except OSError:
        return None
    return data.decode("ascii").strip() if data else None
