"""Stand-ins for host applications the tests cannot run (each says what it imitates)."""
