//! Logging through `defmt` or `log`, or nothing when neither feature is on.
//!
//! Messages use only `{}` placeholders with integers, which both `defmt` and
//! `core::fmt` accept.

/// Logs at info level through `defmt`, else `log`, else nowhere.
macro_rules! log_info {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        defmt::info!($($arg)*);
        #[cfg(all(feature = "log", not(feature = "defmt")))]
        log::info!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        if false {
            // Type-checks the arguments and marks them used; compiles to nothing.
            let _ = core::format_args!($($arg)*);
        }
    }};
}

/// Logs at warn level through `defmt`, else `log`, else nowhere.
macro_rules! log_warn {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        defmt::warn!($($arg)*);
        #[cfg(all(feature = "log", not(feature = "defmt")))]
        log::warn!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        if false {
            let _ = core::format_args!($($arg)*);
        }
    }};
}

pub(crate) use log_info;
pub(crate) use log_warn;
