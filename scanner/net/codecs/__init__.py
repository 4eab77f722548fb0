"""Wire formats more than one stage speaks (pure: bytes in, values out, never raise)."""
