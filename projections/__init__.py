"""Read models for the patient portal and the staff CRM (built in the projections work)."""
