"""Errors that stop an audit before it can run (exit code 2) — always one clear line."""


class AuditError(Exception):
    """Raised for bad input the user must fix: bad flags, config, kubeconfig or source."""


class ConfigError(AuditError):
    """The config file (or a catalog file) is unreadable, or a key or a type is wrong."""
