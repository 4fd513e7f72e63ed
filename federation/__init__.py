"""The ActivityPub protocol: pure builders and parsers, signatures, keys, delivery.

Imports models/, never quart: everything here runs from a worker, a test or a script.
"""
