"""A faithful copy of the seed tutorial's Python service, for the HTTP benchmark.

The seed (../shared/seed) describes an aiohttp app whose `/` answers
{"Respuesta de:": "<host> processing time: <time.time()>"}, counting each request in
slpocapp_request_operations_total{namespace,pod} and timing it in the histogram
slpocapp_request_duration_seconds{namespace,pod} (buckets 1, 2, 5, 6, 10), with
prometheus-client's exposition at `/metrics`. This file rebuilds that from the
description (the seed does not include the source): same libraries, same metrics.

    python bench/seed_app.py            # port 8000, or $PORT
"""
import os
import socket
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

NAMESPACE = os.environ.get("POD_NAMESPACE", "default")
POD = os.environ.get("POD_NAME", socket.gethostname())

REQUESTS = Counter(
    "slpocapp_request_operations_total",
    "The total number of processed requests",
    ["namespace", "pod"],
)
DURATION = Histogram(
    "slpocapp_request_duration_seconds",
    "Histogram for the duration in seconds.",
    ["namespace", "pod"],
    buckets=(1, 2, 5, 6, 10),
)


async def root(request):
    start = time.time()
    REQUESTS.labels(NAMESPACE, POD).inc()
    answer = {"Respuesta de:": f"{POD} processing time: {time.time()}"}
    DURATION.labels(NAMESPACE, POD).observe(time.time() - start)
    return web.json_response(answer)


async def metrics(request):
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


app = web.Application()
app.add_routes([web.get("/", root), web.get("/metrics", metrics)])

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), print=None)
