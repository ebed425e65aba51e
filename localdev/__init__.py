"""Local development without Azure Functions Core Tools: an Azurite launcher, a local host, the demo."""
