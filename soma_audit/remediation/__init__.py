"""Remediation: turn a failing check into a fix the user can trust.

Recipes (``remediations/*.yaml``) name Jinja2 templates (``manifests/``) and transforms
that render corrected, current-version manifests from the config and the inventory;
planning, applying with a backup and rolling back sit on top of the rendered files.
"""
