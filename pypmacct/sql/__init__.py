"""SQL back-ends of the mysql, pgsql and sqlite3 plugins: table layouts (pmacct's
versioning rules), value conversion, engines, recovery files and purge pre-processing."""
