"""The reminders service: one timer set per opportunity; follow-ups, stale warnings,
escalations, reclamations, revisits, pause ends and renewals fired on time (SPEC §3.4, §3.5, §6)."""
