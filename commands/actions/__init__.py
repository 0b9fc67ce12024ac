"""``action``: actions per dossier (spec §13) — the router, its rules and the agenda's view."""
