"""The daemon: start-up, the scheduler, the main loop and shutdown.

Lives here: ``core`` (``Daemon``: builds the parts and runs them), ``lock`` (one daemon per
Barman home), ``scheduler`` (APScheduler jobs calling ``jobs.Jobs``) and ``shutdown``
(stopping what Barman started, in ``finally``).

May import: every subpackage below it.
"""
