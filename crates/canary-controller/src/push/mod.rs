//! Delivering a filter configuration to the proxies.

pub mod ecds_file;
