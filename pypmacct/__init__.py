"""pypmacct: pmacct-compatible network traffic accounting, in Python."""

__version__ = "0.1.0"
# The pmacct release whose behaviour we follow.
PMACCT_COMPAT = "1.7.7"
