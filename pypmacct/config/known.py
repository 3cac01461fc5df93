"""Every key pmacct 1.7.7 accepts in a configuration file, as data.

This is the key dictionary of pmacct 1.7.7 (``cfg.c``), one entry per setting. Each
entry starts with a scope letter: G global only, P plugins only (``key[name]``), B both;
then the daemons that read the setting: p pmacctd, u uacctd, n nfacctd, s sfacctd,
b pmbgpd, m pmbmpd, t pmtelemetryd, ``*`` all of them; then the key names. Names of one
entry write the same setting in pmacct (they share a handler there), so they are aliases
of each other here; the first is the canonical one. An indented line continues the names
of the entry above. Scope and daemons come from the flags of pmacct's CONFIG-KEYS and
from its handlers (a handler that ignores a plugin name makes a key global).

Only the names are pmacct's; ``registry.py`` adds types, defaults and the
``implemented`` flag for the keys pypmacct supports.
"""

PMACCT_177_KEYS = """
B *       debug
B *       debug_internal_msg
G *       syslog
G *       logfile
G *       pidfile
G *       daemonize
B *       aggregate
G *       aggregate_primitives
G *       cluster_name
G *       cluster_id
G *       redis_host
G *       redis_db
G pubmt   snaplen
G *       propagate_signals
P pnsbmt  aggregate_filter
G *       dtls_path
G p       promisc
G pm      pcap_filter
G p       pcap_protocol
G pnsmt   pcap_savefile
G pnsmt   pcap_savefile_wait
G pnsmt   pcap_savefile_delay
G pnsmt   pcap_savefile_replay
G p       pcap_interface
G p       pcap_interface_wait
G pu      pcap_direction uacctd_direction
G p       pcap_ifindex
G p       pcap_interfaces_map
G p       pcap_arista_trailer_offset
G p       pcap_arista_trailer_flag_value
G *       core_proc_name nfacctd_proc_name pmacctd_proc_name uacctd_proc_name
          sfacctd_proc_name
B *       proc_priority
G *       nfacctd_as pmacctd_as uacctd_as nfacctd_as_new sfacctd_as_new sfacctd_as
G *       nfacctd_net pmacctd_net uacctd_net sfacctd_net
G *       use_ip_next_hop
G *       thread_stack
G *       plugins
B *       plugin_pipe_size
B *       plugin_buffer_size
B *       plugin_pipe_zmq
B *       plugin_pipe_zmq_retry
B *       plugin_pipe_zmq_profile
B *       plugin_pipe_zmq_hwm
G *       plugin_exit_any
B *       files_umask
B *       files_uid
B *       files_gid
B *       networks_mask
B *       networks_file
B *       networks_file_filter
B *       networks_file_no_lpm
B *       networks_no_mask_if_zero
B *       networks_cache_entries
B *       ports_file
B *       timestamps_rfc3339
B *       timestamps_utc
B *       timestamps_secs
B *       timestamps_since_epoch
B *       imt_path
B *       imt_passwd
B *       imt_buckets
B *       imt_mem_pools_number
B *       imt_mem_pools_size
B *       sql_db amqp_exchange
B *       print_output_file sql_table mongo_table amqp_routing_key kafka_topic
B *       sql_table_schema mongo_indexes_file
B *       sql_table_version
B *       sql_table_type
B *       sql_conn_ca_file
B *       sql_host mongo_host amqp_host kafka_broker_host
B *       sql_port
B *       sql_data
B *       sql_user mongo_user amqp_user
B *       sql_passwd mongo_passwd amqp_passwd
B *       print_refresh_time sql_refresh_time mongo_refresh_time amqp_refresh_time
          kafka_refresh_time
B *       print_startup_delay sql_startup_delay mongo_startup_delay amqp_startup_delay
          kafka_startup_delay
B *       sql_optimize_clauses
B *       print_history sql_history mongo_history amqp_history kafka_history
B *       print_history_offset sql_history_offset mongo_history_offset
          amqp_history_offset kafka_history_offset
B *       print_history_roundoff sql_history_roundoff mongo_history_roundoff
          mongo_time_roundoff amqp_history_roundoff amqp_time_roundoff
          kafka_history_roundoff
B *       sql_recovery_backup_host sql_backup_host
B *       sql_delimiter
B *       print_max_writers sql_max_writers mongo_max_writers amqp_max_writers
          kafka_max_writers
B *       print_trigger_exec sql_trigger_exec mongo_trigger_exec amqp_trigger_exec
          kafka_trigger_exec
B *       sql_trigger_time
B *       sql_cache_entries
B *       sql_dont_try_update
B *       print_preprocess sql_preprocess mongo_preprocess amqp_preprocess
          kafka_preprocess
B *       print_preprocess_type sql_preprocess_type mongo_preprocess_type
          amqp_preprocess_type kafka_preprocess_type
B *       sql_multi_values amqp_multi_values kafka_multi_values
B *       sql_locking_style
B *       sql_use_copy
B *       print_num_protos sql_num_protos mongo_num_protos amqp_num_protos
          kafka_num_protos
B *       sql_num_hosts
B *       print_cache_entries mongo_cache_entries amqp_cache_entries kafka_cache_entries
B *       print_markers amqp_markers kafka_markers
B *       print_output
B *       print_output_file_append
B *       print_output_lock_file
B *       print_output_separator
B *       print_output_custom_lib
B *       print_output_custom_cfg_file
B *       print_write_empty_file
B *       print_latest_file
B *       mongo_insert_batch
B *       avro_buffer_size
B *       avro_schema_file avro_schema_output_file
B *       amqp_exchange_type
B *       amqp_routing_key_rr kafka_topic_rr
B *       amqp_persistent_msg
B *       amqp_frame_max
B *       amqp_heartbeat_interval
B *       amqp_vhost
B *       kafka_output amqp_output
B *       amqp_avro_schema_routing_key
B *       amqp_avro_schema_refresh_time
B *       kafka_broker_port
B *       kafka_partition
B *       kafka_partition_dynamic
B *       kafka_partition_key
B *       kafka_avro_schema_registry
B *       kafka_config_file
G nsbmt   nfacctd_port sfacctd_port
G nsbmt   nfacctd_ip sfacctd_ip
G nsbmt   nfacctd_ipv6_only
G nsbmt   nfacctd_allow_file sfacctd_allow_file
G n       nfacctd_time_secs
G pnsbmt  nfacctd_time_new pmacctd_time_new sfacctd_time_new
G nsbmt   nfacctd_mcast_groups sfacctd_mcast_groups
B *       nfprobe_peer_as nfacctd_peer_as sfacctd_peer_as sfprobe_peer_as
G pnsbmt  nfacctd_pipe_size pmacctd_pipe_size sfacctd_pipe_size
B n       nfacctd_pro_rating
G n       nfacctd_templates_file
G n       nfacctd_templates_receiver
G n       nfacctd_templates_port
G n       nfacctd_account_options
B *       nfacctd_stitching pmacctd_stitching uacctd_stitching sfacctd_stitching
G *       nfacctd_ext_sampling_rate pmacctd_ext_sampling_rate uacctd_ext_sampling_rate
          sfacctd_ext_sampling_rate
G *       nfacctd_renormalize pmacctd_renormalize uacctd_renormalize sfacctd_renormalize
G nsbmt   nfacctd_disable_checks sfacctd_disable_checks
G n       nfacctd_disable_opt_scope_check
G nsbmt   nfacctd_kafka_broker_host sfacctd_kafka_broker_host
G nsbmt   nfacctd_kafka_broker_port sfacctd_kafka_broker_port
G nsbmt   nfacctd_kafka_topic sfacctd_kafka_topic
G nsbmt   nfacctd_kafka_config_file sfacctd_kafka_config_file
G nsbmt   nfacctd_zmq_address sfacctd_zmq_address
G n       nfacctd_dtls_port
G pubmt   pmacctd_force_frag_handling uacctd_force_frag_handling
G pubmt   pmacctd_frag_buffer_size uacctd_frag_buffer_size
G pubmt   pmacctd_flow_buffer_size uacctd_flow_buffer_size
G pubmt   pmacctd_flow_buffer_buckets uacctd_flow_buffer_buckets
G pubmt   pmacctd_conntrack_buffer_size uacctd_conntrack_buffer_size
G pubmt   pmacctd_flow_lifetime uacctd_flow_lifetime
G pubmt   pmacctd_flow_tcp_lifetime uacctd_flow_tcp_lifetime
G *       pmacctd_nonroot
G *       telemetry_daemon
G *       telemetry_daemon_port_tcp
G *       telemetry_daemon_port_udp
G *       telemetry_daemon_ip
G *       telemetry_daemon_udp_notif_port
G *       telemetry_daemon_udp_notif_ip
G *       telemetry_daemon_udp_notif_nmsgs
G *       telemetry_daemon_ipv6_only
G *       telemetry_daemon_zmq_address
G *       telemetry_daemon_kafka_broker_host
G *       telemetry_daemon_kafka_broker_port
G *       telemetry_daemon_kafka_topic
G *       telemetry_daemon_kafka_config_file
G *       telemetry_daemon_decoder
G *       telemetry_daemon_max_peers
G *       telemetry_daemon_peer_timeout
G *       telemetry_daemon_allow_file
G *       telemetry_daemon_pipe_size
G *       telemetry_daemon_ipprec
G *       telemetry_daemon_msglog_output
G *       telemetry_daemon_msglog_file
G *       telemetry_daemon_msglog_amqp_host
G *       telemetry_daemon_msglog_amqp_vhost
G *       telemetry_daemon_msglog_amqp_user
G *       telemetry_daemon_msglog_amqp_passwd
G *       telemetry_daemon_msglog_amqp_exchange
G *       telemetry_daemon_msglog_amqp_exchange_type
G *       telemetry_daemon_msglog_amqp_routing_key
G *       telemetry_daemon_msglog_amqp_routing_key_rr
G *       telemetry_daemon_msglog_amqp_persistent_msg
G *       telemetry_daemon_msglog_amqp_frame_max
G *       telemetry_daemon_msglog_amqp_heartbeat_interval
G *       telemetry_daemon_msglog_amqp_retry
G *       telemetry_daemon_msglog_kafka_broker_host
G *       telemetry_daemon_msglog_kafka_broker_port
G *       telemetry_daemon_msglog_kafka_topic
G *       telemetry_daemon_msglog_kafka_topic_rr
G *       telemetry_daemon_msglog_kafka_partition
G *       telemetry_daemon_msglog_kafka_partition_key
G *       telemetry_daemon_msglog_kafka_retry
G *       telemetry_daemon_msglog_kafka_config_file
G *       telemetry_dump_output
G *       telemetry_dump_file
G *       telemetry_dump_latest_file
G *       telemetry_dump_refresh_time
G *       telemetry_dump_amqp_host
G *       telemetry_dump_amqp_vhost
G *       telemetry_dump_amqp_user
G *       telemetry_dump_amqp_passwd
G *       telemetry_dump_amqp_exchange
G *       telemetry_dump_amqp_exchange_type
G *       telemetry_dump_amqp_routing_key
G *       telemetry_dump_amqp_routing_key_rr
G *       telemetry_dump_amqp_persistent_msg
G *       telemetry_dump_amqp_frame_max
G *       telemetry_dump_amqp_heartbeat_interval
G *       telemetry_dump_kafka_broker_host
G *       telemetry_dump_kafka_broker_port
G *       telemetry_dump_kafka_topic
G *       telemetry_dump_kafka_topic_rr
G *       telemetry_dump_kafka_partition
G *       telemetry_dump_kafka_partition_key
G *       telemetry_dump_kafka_config_file
G *       telemetry_dump_workers
G *       maps_refresh
G *       maps_index
B *       maps_entries
B *       maps_row_len
B *       pre_tag_map
P *       pre_tag_filter
P *       pre_tag2_filter
P *       pre_tag_label_filter
B *       post_tag
B *       post_tag2
B *       sampling_rate
G nsbmt   sampling_map
G s       sfacctd_counter_output
G s       sfacctd_counter_file
G *       sfacctd_counter_amqp_host
G *       sfacctd_counter_amqp_vhost
G *       sfacctd_counter_amqp_user
G *       sfacctd_counter_amqp_passwd
G *       sfacctd_counter_amqp_exchange
G *       sfacctd_counter_amqp_exchange_type
G *       sfacctd_counter_amqp_routing_key
G *       sfacctd_counter_amqp_persistent_msg
G *       sfacctd_counter_amqp_frame_max
G *       sfacctd_counter_amqp_heartbeat_interval
G *       sfacctd_counter_amqp_retry
G *       sfacctd_counter_kafka_broker_host
G *       sfacctd_counter_kafka_broker_port
G *       sfacctd_counter_kafka_topic
G *       sfacctd_counter_kafka_partition
G *       sfacctd_counter_kafka_partition_key
G *       sfacctd_counter_kafka_retry
G *       sfacctd_counter_kafka_config_file
G pu      classifiers
G pu      classifier_tentatives
G pu      classifier_table_num
G *       classifier_num_roots
G *       classifier_max_flows
G *       classifier_proto_guess
G *       classifier_idle_scan_period
G *       classifier_idle_max_time
G *       classifier_idle_scan_budget
G *       classifier_giveup_proto_tcp
G *       classifier_giveup_proto_udp
G *       classifier_giveup_proto_other
B *       nfprobe_timeouts
B *       nfprobe_hoplimit
B *       nfprobe_maxflows
B *       nfprobe_receiver
B *       nfprobe_dtls
B *       nfprobe_dtls_verify_cert
B *       nfprobe_engine
B *       nfprobe_version
B *       nfprobe_source_ip sfprobe_source_ip tee_source_ip
B *       nfprobe_ipprec sfprobe_ipprec tee_ipprec
P *       nfprobe_direction sfprobe_direction
P *       nfprobe_ifindex sfprobe_ifindex
B *       nfprobe_dont_cache
B *       nfprobe_ifindex_override sfprobe_ifindex_override
B *       nfprobe_tstamp_usec
B *       sfprobe_receiver
B *       sfprobe_agentip
B *       sfprobe_agentsubid
B *       sfprobe_ifspeed
B *       tee_receivers
B *       tee_transparent
B *       tee_max_receivers
B *       tee_max_receiver_pools
B *       tee_pipe_size
B *       tee_kafka_config_file
G *       bgp_daemon
G *       bgp_daemon_ip
G nsbmt   bgp_daemon_ipv6_only
G *       bgp_daemon_id
G *       bgp_daemon_as
G *       bgp_daemon_port
G *       bgp_daemon_pipe_size
G *       bgp_daemon_max_peers
G *       bgp_daemon_msglog_output
G *       bgp_daemon_msglog_file
G *       bgp_daemon_msglog_avro_schema_file
G *       bgp_daemon_msglog_amqp_host
G *       bgp_daemon_msglog_amqp_vhost
G *       bgp_daemon_msglog_amqp_user
G *       bgp_daemon_msglog_amqp_passwd
G *       bgp_daemon_msglog_amqp_exchange
G *       bgp_daemon_msglog_amqp_exchange_type
G *       bgp_daemon_msglog_amqp_routing_key
G *       bgp_daemon_msglog_amqp_routing_key_rr
G *       bgp_daemon_msglog_amqp_persistent_msg
G *       bgp_daemon_msglog_amqp_frame_max
G *       bgp_daemon_msglog_amqp_heartbeat_interval
G *       bgp_daemon_msglog_amqp_retry
G *       bgp_daemon_msglog_kafka_broker_host
G *       bgp_daemon_msglog_kafka_broker_port
G *       bgp_daemon_msglog_kafka_topic
G *       bgp_daemon_msglog_kafka_topic_rr
G *       bgp_daemon_msglog_kafka_partition
G *       bgp_daemon_msglog_kafka_partition_key
G *       bgp_daemon_msglog_kafka_retry
G *       bgp_daemon_msglog_kafka_config_file
G *       bgp_daemon_msglog_kafka_avro_schema_registry
G *       bgp_daemon_allow_file
G *       bgp_daemon_ipprec
G *       bgp_daemon_md5_file
G *       bgp_daemon_batch
G *       bgp_daemon_batch_interval
G *       bgp_aspath_radius
G *       bgp_stdcomm_pattern
G *       bgp_extcomm_pattern
G *       bgp_lrgcomm_pattern
G *       bgp_stdcomm_pattern_to_asn
G *       bgp_lrgcomm_pattern_to_asn
G *       bgp_blackhole_stdcomm_list
G *       bgp_peer_as_skip_subas
G *       bgp_peer_src_as_map
G *       bgp_src_local_pref_map
G *       bgp_src_med_map
G *       bgp_peer_src_as_type
G *       bgp_src_std_comm_type
G *       bgp_src_ext_comm_type
G *       bgp_src_lrg_comm_type
G *       bgp_src_as_path_type
G *       bgp_src_local_pref_type
G *       bgp_src_med_type
G *       bgp_src_roa_type
G *       bgp_agent_map bmp_agent_map
G *       bgp_follow_default
G *       bgp_follow_nexthop
G *       bgp_follow_nexthop_external
G *       bgp_disable_router_id_check
G *       bgp_neighbors_file
G *       bgp_table_peer_buckets
G *       bgp_table_per_peer_buckets
G *       bgp_table_attr_hash_buckets
G *       bgp_table_per_peer_hash
G *       bgp_table_dump_output
G *       bgp_table_dump_file
G *       bgp_table_dump_latest_file
G *       bgp_table_dump_avro_schema_file
G *       bgp_table_dump_refresh_time
G *       bgp_table_dump_amqp_host
G *       bgp_table_dump_amqp_vhost
G *       bgp_table_dump_amqp_user
G *       bgp_table_dump_amqp_passwd
G *       bgp_table_dump_amqp_exchange
G *       bgp_table_dump_amqp_exchange_type
G *       bgp_table_dump_amqp_routing_key
G *       bgp_table_dump_amqp_routing_key_rr
G *       bgp_table_dump_amqp_persistent_msg
G *       bgp_table_dump_amqp_frame_max
G *       bgp_table_dump_amqp_heartbeat_interval
G *       bgp_table_dump_kafka_broker_host
G *       bgp_table_dump_kafka_broker_port
G *       bgp_table_dump_kafka_topic
G *       bgp_table_dump_kafka_topic_rr
G *       bgp_table_dump_kafka_partition
G *       bgp_table_dump_kafka_partition_key
G *       bgp_table_dump_kafka_config_file
G *       bgp_table_dump_kafka_avro_schema_registry
G *       bgp_table_dump_workers
G *       bgp_daemon_lg
G *       bgp_daemon_lg_ip
G *       bgp_daemon_lg_port
G *       bgp_daemon_lg_threads
G *       bgp_daemon_lg_user
G *       bgp_daemon_lg_passwd
G *       bgp_daemon_xconnect_map
G *       bmp_daemon
G *       bmp_daemon_ip
G nsbmt   bmp_daemon_ipv6_only
G *       bmp_daemon_port
G *       bmp_daemon_pipe_size
G *       bmp_daemon_max_peers
G *       bmp_daemon_allow_file
G *       bmp_daemon_ipprec
G *       bmp_daemon_batch
G *       bmp_daemon_batch_interval
G *       bmp_daemon_msglog_output
G *       bmp_daemon_msglog_file
G *       bmp_daemon_msglog_avro_schema_file
G *       bmp_daemon_msglog_amqp_host
G *       bmp_daemon_msglog_amqp_vhost
G *       bmp_daemon_msglog_amqp_user
G *       bmp_daemon_msglog_amqp_passwd
G *       bmp_daemon_msglog_amqp_exchange
G *       bmp_daemon_msglog_amqp_exchange_type
G *       bmp_daemon_msglog_amqp_routing_key
G *       bmp_daemon_msglog_amqp_routing_key_rr
G *       bmp_daemon_msglog_amqp_persistent_msg
G *       bmp_daemon_msglog_amqp_frame_max
G *       bmp_daemon_msglog_amqp_heartbeat_interval
G *       bmp_daemon_msglog_amqp_retry
G *       bmp_daemon_msglog_kafka_broker_host
G *       bmp_daemon_msglog_kafka_broker_port
G *       bmp_daemon_msglog_kafka_topic
G *       bmp_daemon_msglog_kafka_topic_rr
G *       bmp_daemon_msglog_kafka_partition
G *       bmp_daemon_msglog_kafka_partition_key
G *       bmp_daemon_msglog_kafka_retry
G *       bmp_daemon_msglog_kafka_config_file
G *       bmp_daemon_msglog_kafka_avro_schema_registry
G *       bmp_table_peer_buckets
G *       bmp_table_per_peer_buckets
G *       bmp_table_attr_hash_buckets
G *       bmp_table_per_peer_hash
G *       bmp_dump_output
G *       bmp_dump_file
G *       bmp_dump_latest_file
G *       bmp_dump_workers
G *       bmp_dump_avro_schema_file
G *       bmp_dump_refresh_time
G *       bmp_dump_amqp_host
G *       bmp_dump_amqp_vhost
G *       bmp_dump_amqp_user
G *       bmp_dump_amqp_passwd
G *       bmp_dump_amqp_exchange
G *       bmp_dump_amqp_exchange_type
G *       bmp_dump_amqp_routing_key
G *       bmp_dump_amqp_routing_key_rr
G *       bmp_dump_amqp_persistent_msg
G *       bmp_dump_amqp_frame_max
G *       bmp_dump_amqp_heartbeat_interval
G *       bmp_dump_kafka_broker_host
G *       bmp_dump_kafka_broker_port
G *       bmp_dump_kafka_topic
G *       bmp_dump_kafka_topic_rr
G *       bmp_dump_kafka_partition
G *       bmp_dump_kafka_partition_key
G *       bmp_dump_kafka_config_file
G *       bmp_dump_kafka_avro_schema_registry
G *       bmp_daemon_parse_proxy_header
G *       rpki_roas_file
G *       rpki_rtr_cache
G *       rpki_rtr_cache_version
G *       rpki_rtr_cache_pipe_size
G *       rpki_rtr_cache_ipprec
G *       flow_to_rd_map
G *       isis_daemon igp_daemon
G *       isis_daemon_ip
G *       isis_daemon_net
G *       isis_daemon_iface
G *       isis_daemon_mtu
G *       isis_daemon_msglog
G *       igp_daemon_map
G *       igp_daemon_map_msglog
G *       geoip_ipv4_file
G *       geoip_ipv6_file
G *       geoipv2_file
G u       uacctd_group
G u       uacctd_nl_size
G u       uacctd_threshold
G pubmt   tunnel_0
B *       tmp_asa_bi_flow
G *       tmp_bgp_lookup_compare_ports
G *       tmp_bgp_daemon_route_refresh
G *       tmp_bgp_daemon_origin_type_int
"""


# Keys that pmacct 1.7.7 no longer has but earlier releases documented (the project's
# seed CONFIG-KEYS lists them); pypmacct implements them for the SQL plugins.
PMACCT_OLDER_KEYS = """
B *       sql_recovery_logfile
B *       sql_history_since_epoch
B ns      nfacctd_sql_log sfacctd_sql_log
B pu      sql_aggressive_classification
"""
PMACCT_177_KEYS = PMACCT_177_KEYS + PMACCT_OLDER_KEYS
