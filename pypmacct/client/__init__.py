"""The ``pmacct`` client of the memory plugin: argv handling (``main``), the query
protocol (``protocol``), matching data (``query``) and the table outputs (``render``)."""
