"""Event-sourced appointment booking: domain model, application service, settings, servers, CLI."""
