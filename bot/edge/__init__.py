"""The bot's edge: what speaks Matrix protocols (verification, secret storage, ...)."""
