"""HTTP: the Quart app, the pages, the REST API, the ActivityPub and media routes, the OAuth
server, authentication and sessions. Thin adapters: read the request, call a service,
render or answer."""
