"""``lightning-dielectric sweep dashboard``: serve a sweep's Optuna storage with ``optuna-dashboard``.

Works on every storage a sweep can use (SQLite, ``journal:PATH``, PostgreSQL): the storage is opened
by :func:`~lightning_dielectric.sweep.store.open_storage`, as the driver opens it, and handed to the
dashboard's server. Each trial's user attributes (family, w, N, D, seed, val_loss, flops,
device_hours, ...) are shown on its page. Binds 127.0.0.1 unless ``--host`` says otherwise: the
dashboard has no authentication, so expose it only through an SSH tunnel or a trusted network.
"""

from __future__ import annotations

import sys

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
INSTALL_HINT = "optuna-dashboard is not installed: pip install 'lightning-dielectric[dashboard]'"


def dashboard_command(sweep: str, port: int = DEFAULT_PORT) -> str:
    """The command line that serves ``sweep``'s storage (printed by ``sweep status``)."""
    return f"lightning-dielectric sweep dashboard {sweep} --port {port}"


def serve(storage_url: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the Optuna storage at ``storage_url`` until interrupted (blocks)."""
    try:
        from optuna_dashboard import run_server
    except ImportError as err:
        raise RuntimeError(INSTALL_HINT) from err
    from lightning_dielectric.sweep.store import open_storage, redact

    storage = open_storage(storage_url)
    print(f"dashboard of {redact(storage_url)} on http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    try:
        run_server(storage, host=host, port=port)
    except KeyboardInterrupt:
        print("dashboard stopped", file=sys.stderr)
