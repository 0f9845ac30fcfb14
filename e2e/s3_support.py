"""A local S3-compatible server for the archive tests: moto's, started, restarted and
stopped by scripts/s3-server.sh (the same script that gives the Kafka tests' tansu
broker its storage), and boto3 as the independent client that reads what the server
wrote."""
import shutil
import subprocess
import tempfile
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "s3-server.sh"
# moto accepts any key; the server signs with these like with real ones.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}


class S3Server:
    def __init__(self, buckets):
        self.dir = tempfile.mkdtemp(prefix="instabrand-s3-")
        args = [str(SCRIPT), "start", "--dir", self.dir]
        for b in buckets:
            args += ["--bucket", b]
        out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=60)
        self.endpoint = out.stdout.strip().splitlines()[-1]

    def server_env(self):
        """What the instabrand server needs to reach this store."""
        return dict(CREDENTIALS, INSTABRAND_ARCHIVE__S3__ENDPOINT=self.endpoint)

    def stop(self):
        subprocess.run([str(SCRIPT), "stop", self.dir], check=True, timeout=30)

    def restart(self):
        """Starts it again on the same port with the same buckets, empty: moto keeps
        objects in memory, so what it held before is gone."""
        subprocess.run([str(SCRIPT), "restart", self.dir], check=True, timeout=60)

    def close(self):
        subprocess.run([str(SCRIPT), "stop", self.dir], timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self):
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=CREDENTIALS["AWS_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def keys(self, bucket, prefix=""):
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def download(self, bucket, prefix, dest):
        """Every object under `prefix/` into `dest`, keeping the key's path below the
        prefix (so `dt=…/` partitions stay folders for DuckDB). Returns the local paths."""
        c = self.client()
        dest = Path(dest)
        out = []
        for key in self.keys(bucket, prefix + "/"):
            path = dest / key[len(prefix) + 1:]
            path.parent.mkdir(parents=True, exist_ok=True)
            c.download_file(bucket, key, str(path))
            out.append(path)
        return out
