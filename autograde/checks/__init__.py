"""Checks that lab test cells call: `api` for check writers, one module per lab named after it."""
