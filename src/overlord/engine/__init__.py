"""The engine: every user's positions in columnar arrays, a vector screen, exact confirmation."""
