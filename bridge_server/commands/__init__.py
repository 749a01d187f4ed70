"""The ``rvm-bridge`` sub-commands, one module each: thin shells over the engine, the server and the client."""
