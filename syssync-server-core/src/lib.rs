//! syssync-server-core
