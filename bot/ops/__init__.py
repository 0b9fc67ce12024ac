"""Operating the bot (spec §14): the audit record's tools, the GDPR record, metrics, doctor."""
