"""rvm-bridge server, protocol and client."""
