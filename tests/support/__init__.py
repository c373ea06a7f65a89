"""What the integration, container and unit tests share, one module per thing:

- ``poll``: ``wait_until``, the one bounded poller; every wait for something to happen uses it.
- ``paths``: where PostgreSQL's programs, Barman and the supervisor are; ``ports``: a free port.
- ``postgres``: a real PostgreSQL cluster for one test (``cluster()``, ``Cluster``).
- ``processes``: the live processes, to find what a test started or left behind.
- ``daemon``: ``barman-supervisor run`` as a child (``Daemon``), ``running_daemon(...)`` that starts
  it, waits for an event and always stops it, and ``Probe`` for its HTTP endpoints.
- ``restored``: a directory to restore into, and the restored copy started on its own socket.
- ``s3``: a real S3 API server (moto_server) behind a relay a test can cut.
- ``webhook``: a receiver for alerts and dead-man's pings.

Nothing here imports more than the module needs: unit tests import ``poll`` and ``webhook``
without PostgreSQL, Barman or boto3 being loaded.
"""
