"""The executor (the prior suite's liquidator role): ``overlord execute``.

It consumes ``UnderwaterUserEvent``s, re-checks each user at the latest block, liquidates
with the best net-profit plan through a :class:`~overlord.executor.submit.Submitter` and
records every attempt in SQLite (:mod:`overlord.executor.store`).
"""
