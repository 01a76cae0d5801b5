"""Price feeds: which feeds move which reserves, pending updates, and predicted prices."""
