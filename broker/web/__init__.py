"""The broker's HTTP layer (Flask): parses requests, calls the core, renders results."""
