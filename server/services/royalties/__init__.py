"""Royalties between partner instances: Listens received, signed statements per period,
and the co-op hub that verifies and nets them."""
