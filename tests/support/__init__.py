"""What the tests of several parts share: database fixtures (db, registered in conftest), end-to-end checks
(e2e), media makers (media), the small screenplay (play), simulator-backed model settings (gateway)."""
