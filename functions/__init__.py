"""Azure Functions blueprints: one module per trigger family. Handlers parse, call shared/, write, return."""
