//! Fleet mode end to end (issue 15): runner processes sharing one etcd cluster.
