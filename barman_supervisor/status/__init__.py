"""What the daemon knows, and how it is shown.

Lives here: ``state`` (typed, named writers of the per-server state, and the plain records it
holds), ``health`` (readiness and liveness from the state, with their limits), ``metrics``
(Prometheus), ``alerts`` (webhooks on a change of health), ``http`` (``/healthz``,
``/readyz``, ``/status``, ``/metrics``) and ``page`` (``/`` for people, from ``/status``).

Status reads plain records; it never imports the features that produce them.

May import: ``errors``, ``log``, ``retry``, ``config``, ``process``, ``postgres``, ``barman``.
"""
