"""The opportunity service: the event-sourced Opportunity aggregate and its edges."""
