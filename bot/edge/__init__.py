"""The edge: where Matrix meets the bot's core (what comes in, what goes out, whom to trust)."""
