"""Clients of the third-party services workflows and dispositions reach over HTTP."""
