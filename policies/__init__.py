"""The Vinylhound policy pack: rules live in ``policies.rules``; the pack is built in ``__main__``."""
