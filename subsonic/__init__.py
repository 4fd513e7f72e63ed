"""The Subsonic / OpenSubsonic protocol as plain values: the response envelope in XML,
JSON and JSONP, error codes, request parameters, ids and the token check. Nothing here
knows about Quart, the database or the rest of playfair (``server/web/subsonic/`` adapts
it to requests; ``server/services/subsonic/`` holds the queries)."""
