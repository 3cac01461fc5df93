# A DNS-like query: after NUL bytes are dropped the header is 2-6 bytes (id, flags
# 0x01 0x00 -> "\x01", counts 0x0001 -> "\x01"), then labels: a length byte and
# lowercase letters/digits, ending with a TLD and the type/class bytes.
dnsish
^.?.?\x01\x01?\x01?[\x01-\x3f][a-z0-9-]+([\x01-\x3f][a-z0-9-]+)*[\x02-\x06][a-z][a-z][a-z]?[\x01\x1c\x0f]?\x01$
