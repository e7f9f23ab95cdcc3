"""Download the jars of dev/spark_jars.txt from Maven Central into a folder, checking each digest.

Usage (the Dockerfile's): python3 fetch_jars.py spark_jars.txt DIR
"""

import hashlib
import sys
import urllib.request
from pathlib import Path

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"


def main(listing: str, target: str) -> None:
    folder = Path(target)
    folder.mkdir(parents=True, exist_ok=True)
    for line in Path(listing).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        coordinates, digest = line.split()
        group, artifact, version = coordinates.split(":")
        name = f"{artifact}-{version}.jar"
        url = f"{MAVEN_CENTRAL}/{group.replace('.', '/')}/{artifact}/{version}/{name}"
        with urllib.request.urlopen(url, timeout=300) as response:  # noqa: S310 (a fixed https URL)
            body = response.read()
        if hashlib.sha256(body).hexdigest() != digest:
            sys.exit(f"{name}: sha256 {hashlib.sha256(body).hexdigest()} is not the listed {digest}")
        (folder / name).write_bytes(body)
        print(f"{name}: {len(body)} bytes, sha256 checked")


if __name__ == "__main__":
    main(*sys.argv[1:])
