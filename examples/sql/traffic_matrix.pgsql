CREATE TABLE traffic_matrix (
    peer_ip_src inet NOT NULL,
    iface_in BIGINT NOT NULL,
    iface_out BIGINT NOT NULL,
    as_src BIGINT NOT NULL,
    as_dst BIGINT NOT NULL,
    packets BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    stamp_inserted timestamp without time zone NOT NULL,
    stamp_updated timestamp without time zone,
    PRIMARY KEY (peer_ip_src, iface_in, iface_out, as_src, as_dst, stamp_inserted)
);
