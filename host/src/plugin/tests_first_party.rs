//! Host-side tests of the first-party plugins (being written).
