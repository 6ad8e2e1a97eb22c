"""plait beside its peers, measured in the same run: the cases behind ``plait bench``."""
