"""Reference checks that lab test cells call: one module per lab."""
