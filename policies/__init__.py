"""The Vinylhound policy pack (see __main__.py) and its rules (``policies.rules``)."""
