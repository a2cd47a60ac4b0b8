"""The chaos suite: the scheduler's guarantees under process and broker crashes."""
