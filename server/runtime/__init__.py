"""What a running process is made of: settings, the resources it opens (database engines,
the HTTP client, keys), the worker loop, logging, networking and time. Knows nothing of
HTTP requests; imports only ``models``, ``federation`` and itself."""
