"""Runnable demos (also behind the ``microbbb demo ...`` command)."""
