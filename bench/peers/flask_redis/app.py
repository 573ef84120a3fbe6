"""Peer 2: the Docker Compose quick-start counter (Flask + redis-py INCR).

A faithful reimplementation of the "Get started with Docker Compose" app:
``cache.incr('hits')`` with a small retry loop on connection errors, one
Redis client per worker process. The suite starts ``redis-server`` on a
loopback port with ``appendonly yes`` and ``appendfsync always`` (every
write command is fsynced to the AOF before the reply), so every counted
visit is durable -- the fair durable peer for moscow-time.

Configured by REDIS_HOST / REDIS_PORT; served by gunicorn (sync workers).
"""

import os
import time

import redis
from flask import Flask, Response

app = Flask(__name__)
cache = redis.Redis(
    host=os.environ.get("REDIS_HOST", "127.0.0.1"),
    port=int(os.environ.get("REDIS_PORT", "6379")),
)


def get_hit_count() -> int:
    retries = 5
    while True:
        try:
            return cache.incr("hits")
        except redis.exceptions.ConnectionError as exc:
            if retries == 0:
                raise exc
            retries -= 1
            time.sleep(0.5)


@app.route("/")
def hello():
    count = get_hit_count()
    return f"Hello World! I have been seen {count} times.\n"


@app.route("/visits")
def visits():
    return Response(f"{int(cache.get('hits') or 0)}\n", mimetype="text/plain")


@app.route("/healthz")
def healthz():
    return Response("ok", mimetype="text/plain")
