//! syssync-device
