"""The stop margin the documentation and the manifests promise covers every grace of a stop."""

from __future__ import annotations

from barman_supervisor.daemon.shutdown import (
    BACKUP_STOP_GRACE,
    DRILL_STOP_GRACE,
    LEFTOVER_GRACE,
    STOP_MARGIN,
)
from barman_supervisor.jobs import FLUSH_STOP_GRACE, FLUSH_TIMEOUT


def test_the_stop_margin_covers_every_grace_after_shutdown_grace() -> None:
    # streaming's SIGINT and the leftovers' SIGTERM each wait LEFTOVER_GRACE.
    graces = BACKUP_STOP_GRACE + DRILL_STOP_GRACE + 2 * LEFTOVER_GRACE
    assert graces + FLUSH_TIMEOUT + FLUSH_STOP_GRACE <= STOP_MARGIN
