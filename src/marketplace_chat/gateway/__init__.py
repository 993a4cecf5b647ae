"""The Socket.IO edge: namespace `/chat`. It parses, authenticates, calls the service, acks."""
