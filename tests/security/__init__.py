"""The escape suite: attacks that must work without the sandbox and fail inside it."""
