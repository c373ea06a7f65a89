"""What the integration, container and unit tests share, one module per thing:

- ``poll``: ``wait_until``, the one bounded poller; every wait for something to happen uses it.
- ``paths``: where PostgreSQL's programs, Barman and the supervisor are; ``ports``: a free port.
- ``postgres``: a real PostgreSQL cluster for one test (``cluster()``, ``Cluster``).
- ``processes``: the live processes, to find what a test started or left behind.
- ``daemon``: ``barman-supervisor run`` as a child (``Daemon``), ``running_daemon(...)`` that starts
  it, waits for an event and always stops it, and ``Probe`` for its HTTP endpoints.
- ``restored``: a directory to restore into, and the restored copy started on its own socket.
- ``protected``: a cluster a daemon protects with its first backup DONE, its drill and restore.
- ``s3``: a real S3 API server (moto_server) behind a relay a test can cut; ``offsite``: a
  daemon copying to it, and what the store holds.
- ``forwarder``: a TCP forwarder on 127.0.0.1 (the failover tests' "VIP", the S3 relay): moved to
  another port with the open connections dropped, or cut.
- ``ha``: a primary and its real streaming standby (``ha_pair``), synchronous or not, and what an
  HA manager does to them: a standby left behind, promotion, ``pg_rewind`` and rejoin,
  switchover.
- ``refusal``: bad input given to ``barman-supervisor run``, and what its refusal must look like.
- ``webhook``: a receiver for alerts and dead-man's pings.
- ``webconfig``: a web configuration file for the HTTP port (throwaway CA, bcrypt users) and a
  client that speaks HTTP or HTTPS to it.
- ``slowclients``: idle and byte-a-second connections that tie up an HTTP server, reopened
  when it closes them (``SlowClients``).
- ``prometheus``: a real Prometheus (Debian's package) on 127.0.0.1 loading the shipped
  ``deploy/prometheus/`` configuration and rules, and its HTTP API (alerts, queries); ``PROMTOOL``.
- ``promql``: the metric names a PromQL expression reads (dashboard and rule queries held
  against what the daemon serves).
- ``kubernetes``: the manifests of ``deploy/kubernetes/`` as ``kubectl kustomize`` renders them,
  and the pod's container, settings and selectors read out of them.

The benchmarks (``bench/``, ``make bench``) run their clusters and daemons with these too.

Nothing here imports more than the module needs: unit tests import ``poll`` and ``webhook``
without PostgreSQL, Barman or boto3 being loaded.
"""
