"""One module per `audio-agent` subcommand."""
