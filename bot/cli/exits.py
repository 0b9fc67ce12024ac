"""The exit codes of ``livcr``."""

#: Exit codes (README "Exit codes"): 0 done, 1 refused or failed (the line says why),
#: 2 the configuration or the command line is wrong, 3 the homeserver cannot be reached or
#: is not one, 4 the homeserver refused the bot's credentials, 75 rate-limited (try later).
EXIT_FAILED = 1
EXIT_CONFIG = 2
