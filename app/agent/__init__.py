"""`ovbench agent`: fleet mode's process on each device host (README: Fleet, docs/fleet.md).

A Celery worker (concurrency 1, prefetch 1, late acks) on the host's own queue; each message
says "run job <id>". The agent talks only to the API (with its agent token) and the broker,
never to the database:

- registers its devices, labels and host facts, then heartbeats every second (agent.py);
- claims the job (queued -> running; a duplicate message finds it claimed and is dropped),
  fetches the job's files by sha256 into a verified, size-capped cache (cache.py), and runs
  it with the engine in a process of its own (run_one.py), under the host's run lock;
- reports progress about twice a second, learning of a cancel in the same round trip, and
  stores the outcome through the API before it acks the message.
"""
