"""Where results live: one place that turns a storage URL into an Optuna storage.

SQLite (``sqlite:///studies.db``) is the embedded default; PostgreSQL is for real deployments. The
storage keeps a heartbeat so that a dead worker's trial is failed and retried, and bad URLs or
unreachable servers are reported in one line before anything is written.
"""
