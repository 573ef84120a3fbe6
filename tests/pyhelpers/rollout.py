"""The rolling restart every rollout rehearsal performs, as the StatefulSet controller does it."""
from __future__ import annotations

import time

# The controller's pause between a pod's exit and its replacement's start.
RESTART_GAP_SECS = 2


def roll(pods: list, stop, start, gap: float = RESTART_GAP_SECS) -> list:
    """Highest ordinal first: stop(pod) (SIGTERM, wait for the exit), the gap, start(pod) (start
    again on the same volume and wait until ready), next. Returns what each stop() returned."""
    stops = []
    for pod in reversed(pods):
        stops.append(stop(pod))
        time.sleep(gap)  # part of what is rehearsed: the controller's gap, not a synchronization
        start(pod)
    return stops
