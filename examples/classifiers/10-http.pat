# HTTP - HyperText Transfer Protocol (written for pypmacct's tests, l7-filter style)
# Matches a server's status line followed by a typical header, or a POST request.
# The pattern is lowercased before use, so "HTTP" in the payload matches too.
http
http/(0\.9|1\.0|1\.1) [1-5][0-9][0-9] [\x09-\x0d -~]*(connection:|content-type:|content-length:|date:)|post [\x09-\x0d -~]* http/[01]\.[019]
# l7-filter files carry lines for its userspace version after the pattern: ignored
userspace pattern=(http/(0\.9|1\.0|1\.1) [1-5][0-9][0-9] [\x09-\x0d -~]*(connection:|content-type:|content-length:|date:))
