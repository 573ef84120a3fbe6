"""Peer 1: the typical course app -- a Flask visit counter kept in a plain file.

A faithful reimplementation of what most "show the time and count visits"
course apps do: on every page view read ``visits``, add one, and write the
number back *in place* (open with "w", truncate, write). There is no lock,
no temporary file, no rename and no fsync. Under concurrent gunicorn workers
two requests read the same value (a lost update), and a reader that catches
the file just after another worker truncated it reads "" and restarts the
count from 0 -- exactly the behaviour the benchmark measures as lost visits.

Served by gunicorn (sync workers); see bench/moscow_bench/systems.py for the command line.
"""

import os
from datetime import datetime, timedelta, timezone

from flask import Flask, Response

app = Flask(__name__)

DATA_DIR = os.environ.get("DATA_DIR", "./data")
VISITS_FILE = os.path.join(DATA_DIR, "visits")
MSK = timezone(timedelta(hours=3), "MSK")

os.makedirs(DATA_DIR, exist_ok=True)


def read_visits() -> int:
    try:
        with open(VISITS_FILE) as f:
            return int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return 0


def write_visits(n: int) -> None:
    with open(VISITS_FILE, "w") as f:
        f.write(f"{n}\n")


@app.route("/")
def index():
    visits = read_visits() + 1
    write_visits(visits)
    now = datetime.now(MSK).strftime("%Y-%m-%d %H:%M:%S")
    return (
        "<!doctype html><html><head><title>Moscow time</title></head><body>"
        f"<h1>Moscow time: {now}</h1><p>Visits: {visits}</p></body></html>"
    )


@app.route("/visits")
def visits():
    return Response(f"{read_visits()}\n", mimetype="text/plain")


@app.route("/healthz")
def healthz():
    return Response("ok", mimetype="text/plain")
