//! syssync-sim
