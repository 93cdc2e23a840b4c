"""Notary v1: codec and verifier over the bytes a notary-server serves, client and writer."""
