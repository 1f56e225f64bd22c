"""soma-audit benchmark (`make bench`); see docs/performance.md."""
