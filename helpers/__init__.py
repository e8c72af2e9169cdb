"""Tested library behind the skin-lesion notebook course."""
