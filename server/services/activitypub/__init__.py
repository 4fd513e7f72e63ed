"""ActivityPub for this instance: our actors and objects, the inbox and its handlers,
deliveries, remote actors and follows. Builds on the pure documents in federation/."""
