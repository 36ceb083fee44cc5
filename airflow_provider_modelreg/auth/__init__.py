"""Authentication helpers for the services this provider talks to."""
