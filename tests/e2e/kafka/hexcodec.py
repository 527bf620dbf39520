"""Hex for binary fields in the e2e client scripts' JSON (null stays null)."""


def hx(b):
    return None if b is None else bytes(b).hex()


def unhex(s):
    return None if s is None else bytes.fromhex(s)
